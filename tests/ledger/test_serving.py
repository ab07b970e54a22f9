"""``alliance serve --workers N``'s supervisor (ledger/serving.py) on a real port: each API
process listens on a socket of its own, connections reach every process, a killed process is
replaced, the port is refused when taken, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ledger.serving import PortInUseError, hold_port, own_sockets_supported
from tests.servers import free_port

pytestmark = pytest.mark.skipif(not own_sockets_supported(), reason="Linux's SO_REUSEPORT")

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 2
SUPERVISE = (
    "import sys, uvicorn\n"
    "from ledger.serving import Supervisor\n"
    "config = uvicorn.Config('tests.ledger.pid_app:app', host='127.0.0.1',\n"
    f"    port=int(sys.argv[1]), timeout_graceful_shutdown={GRACE_S}, log_level='info')\n"
    "sys.exit(Supervisor(config, workers=int(sys.argv[2])).run())\n")


def _until(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _start(port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SUPERVISE, str(port), str(workers)],
                            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _pid_of_a_new_connection(url: str) -> int | None:
    try:  # a client of its own: a new connection each time
        return int(httpx.get(url, timeout=2).text)
    except httpx.HTTPError:
        return None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(f":{port:04X}") and f[3] == "0A":  # 0A: LISTEN
            inodes.add(f[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str, Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _start(port, 2, log)
    url = f"http://127.0.0.1:{port}/"
    try:
        _until(lambda: len({_pid_of_a_new_connection(url) for _ in range(20)} - {None}) == 2,
               "both processes to answer")
        yield proc, port, url, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(GRACE_S + 10)
            except subprocess.TimeoutExpired:
                for k in _children(proc.pid):
                    os.kill(k, signal.SIGKILL)
                proc.kill()
                proc.wait()


def test_each_api_process_listens_on_a_socket_of_its_own_and_gets_connections(
        served: tuple[subprocess.Popen[bytes], int, str, Path]) -> None:
    proc, port, url, _ = served
    kids = _children(proc.pid)
    listening = _listening_inodes(port)
    # Two listening sockets on the port, one in each process (uvicorn's supervisor shares
    # one socket between its processes: one inode, in both); the parent's reservation is
    # bound but never listens.
    assert len(listening) == 2
    held = [_socket_inodes(k) & listening for k in kids]
    assert sorted(len(h) for h in held) == [0, 1, 1] or sorted(len(h) for h in held) == [1, 1]
    assert len(set().union(*held)) == 2
    assert not _socket_inodes(proc.pid) & listening
    answered = [_pid_of_a_new_connection(url) for _ in range(60)]
    counts = {pid: answered.count(pid) for pid in set(answered)}
    # 60 new connections hashed over two sockets: both get some (all on one: 2 ** -59)
    assert set(counts) <= set(kids) and len(counts) == 2, counts


def test_a_killed_api_process_is_replaced_and_the_new_one_gets_connections(
        served: tuple[subprocess.Popen[bytes], int, str, Path]) -> None:
    proc, _, url, log = served
    pids = {_pid_of_a_new_connection(url) for _ in range(40)} - {None}
    victim = min(pids)  # type: ignore[type-var]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    _until(lambda: not Path(f"/proc/{victim}").exists()
           or Path(f"/proc/{victim}/stat").read_text().split()[2] == "Z", "the kill")
    # meanwhile every new connection is answered, by the other process (or by the new one)
    survivor = (pids - {victim}).pop()
    answered = [_pid_of_a_new_connection(url) for _ in range(10)]
    assert None not in answered and victim not in answered and survivor in answered

    def replaced() -> bool:
        now = {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
        return len(now) == 2 and victim not in now and survivor in now
    _until(replaced, "a new process in the killed one's place")
    assert proc.poll() is None
    assert "ended (exit code -9): starting another" in log.read_text()


def test_a_taken_port_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    # another program's listening socket (no SO_REUSEPORT)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = _start(port, 2, tmp_path / "a.log")
        assert proc.wait(60) != 0
        assert not _listening_inodes(port) - {_inode(other)}
        assert "is in use" in (tmp_path / "a.log").read_text()
    # another program bound with SO_REUSEPORT (as an API process is): refused too
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(PortInUseError, match="is in use"):
            hold_port("127.0.0.1", other.getsockname()[1])


def _inode(sock: socket.socket) -> str:
    return os.readlink(f"/proc/self/fd/{sock.fileno()}")[8:-1]


def test_a_second_server_on_the_same_port_is_refused_while_the_first_serves(
        served: tuple[subprocess.Popen[bytes], int, str, Path], tmp_path: Path) -> None:
    first, port, url, _ = served
    second = _start(port, 2, tmp_path / "second.log")
    assert second.wait(60) != 0
    # the lock, taken before the trial bind: of two started at once, one is refused
    assert "is served by another alliance serve" in (tmp_path / "second.log").read_text()
    answered = {_pid_of_a_new_connection(url) for _ in range(20)}
    assert answered <= set(_children(first.pid))


def test_sigterm_stops_every_process_within_the_grace(
        served: tuple[subprocess.Popen[bytes], int, str, Path]) -> None:
    proc, port, url, _ = served
    kids = {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
    assert len(kids) == 2
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(GRACE_S + 10) == 0
    assert time.monotonic() - t0 < GRACE_S + 5
    for k in kids:  # the API processes (multiprocessing's resource tracker ends on its own)
        assert not Path(f"/proc/{k}").exists()
    assert not _listening_inodes(port)
    # the port is free again
    port2, held = hold_port("127.0.0.1", port)
    for s in held:
        s.close()
    assert port2 == port


def test_sighup_replaces_every_process_while_connections_are_answered(
        served: tuple[subprocess.Popen[bytes], int, str, Path]) -> None:
    proc, _, url, _ = served
    before = {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
    assert len(before) == 2
    proc.send_signal(signal.SIGHUP)
    answered: list[int | None] = []

    def replaced() -> bool:
        now = [_pid_of_a_new_connection(url) for _ in range(10)]
        answered.extend(now)
        return len(set(now) - before - {None}) == 2 and not set(now) & before
    _until(replaced, "both processes replaced")
    assert None not in answered  # every new connection was answered meanwhile
    assert proc.poll() is None
