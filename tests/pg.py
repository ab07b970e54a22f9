"""A throwaway PostgreSQL server for the store tests: initdb in a temporary directory, started
on a free loopback port with trust auth, stopped and deleted at the end.

Needs PostgreSQL's server binaries (Debian's ``postgresql`` package; scripts/test.sh installs
it): when they are missing the tests that need the server fail with that message, they are
not skipped. As root, the server runs as the ``postgres`` user (initdb and postgres refuse to
run as root), which owns the data directory."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port

SERVER_USER = "postgres"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install -y postgresql "
                           "(scripts/test.sh does it)")
    return path


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(f"running as root, but there is no {SERVER_USER!r} user to run "
                           "PostgreSQL as (Debian's postgresql package creates it)") from None
    return ["runuser", "-u", SERVER_USER, "--", *cmd]


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(_as_server_user(cmd), capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"PostgreSQL {what} failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a PostgreSQL server; give a SQLAlchemy URL of an empty database on it."""
    initdb, pg_ctl, pg_isready, createdb = (_bin(n) for n in
                                            ("initdb", "pg_ctl", "pg_isready", "createdb"))
    base = Path(tempfile.mkdtemp(prefix="alliance-pg-"))
    data, log = base / "data", base / "server.log"
    started = False
    try:
        if os.geteuid() == 0:
            _as_server_user([])  # fails clearly if the user is missing
            shutil.chown(base, SERVER_USER, SERVER_USER)
        port = free_port()
        _run([initdb, "-D", str(data), "-U", "alliance", "--auth=trust", "-E", "UTF8"], "initdb")
        _run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
              f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off -c max_connections=200",
              "start"], f"start (log: {log})")
        started = True
        deadline = time.monotonic() + 30
        while subprocess.run(_as_server_user([pg_isready, "-h", "127.0.0.1", "-p", str(port)]),
                             capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {log}")
            time.sleep(0.1)
        _run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "alliance", "alliance"],
             "createdb")
        yield f"postgresql+psycopg://alliance@127.0.0.1:{port}/alliance"
    finally:
        if started:
            subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
