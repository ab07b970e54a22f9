"""A throwaway PostgreSQL server for the store tests: initdb in a temporary directory, started
on a free loopback port with trust auth, stopped at the end. Needs Debian's postgresql
binaries (scripts/install.sh --test installs them); a missing server fails the tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run scripts/install.sh --test")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a PostgreSQL server; give a SQLAlchemy URL of an empty database on it."""
    base = Path(tempfile.mkdtemp(prefix="alliance-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    subprocess.run(_as_postgres([_bin("initdb"), "-D", str(data), "-U", "alliance",
                                 "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    log = base / "server.log"
    subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                                 f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off", "start"]),
                   check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(_as_postgres([_bin("pg_isready"), "-h", "127.0.0.1", "-p",
                                           str(port)]), capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {log}")
            time.sleep(0.1)
        subprocess.run(_as_postgres([_bin("createdb"), "-h", "127.0.0.1", "-p", str(port),
                                     "-U", "alliance", "alliance"]), check=True,
                       capture_output=True)
        yield f"postgresql+psycopg://alliance@127.0.0.1:{port}/alliance"
    finally:
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
