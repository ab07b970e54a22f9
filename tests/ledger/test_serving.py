"""``alliance serve --workers N``'s supervisor (ledger/serving.py) on a real port: each API
process listens on a socket of its own, connections reach every process, a killed process is
replaced, the port is refused when taken, and SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.serving import (
    PortInUseError,
    hold_port,
    listening_socket,
    own_sockets_supported,
    steer,
)
from tests.servers import free_port

pytestmark = pytest.mark.skipif(not own_sockets_supported(), reason="Linux's SO_REUSEPORT")

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 2
SUPERVISE = (
    "import json, logging, sys, uvicorn\n"
    "from ledger.serving import Supervisor\n"
    "logging.basicConfig(level=logging.INFO)\n"
    "options = json.loads(sys.argv[3])\n"
    "config = uvicorn.Config(options.pop('app', 'tests.ledger.pid_app:app'), host='127.0.0.1',\n"
    f"    port=int(sys.argv[1]), timeout_graceful_shutdown={GRACE_S}, log_level='info')\n"
    "sys.exit(Supervisor(config, workers=int(sys.argv[2]), **options).run())\n")


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


def _start(port: int, workers: int, log: Path, **options: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SUPERVISE, str(port), str(workers),
                             json.dumps(options)],
                            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _pid_of_a_new_connection(url: str, timeout: float = 2) -> int | None:
    try:  # a client of its own: a new connection each time
        return int(httpx.get(url, timeout=timeout).text)
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


Served = tuple[subprocess.Popen[bytes], int, str, Path]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(GRACE_S + 10)
        except subprocess.TimeoutExpired:
            for k in _children(proc.pid):
                os.kill(k, signal.SIGKILL)
            proc.kill()
            proc.wait()


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start a supervisor of ``workers`` processes (Supervisor's keyword ``options``) and
    wait until each answers; stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(workers: int, **options: Any) -> Served:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        proc = _start(port, workers, log, **options)
        started.append(proc)
        url = f"http://127.0.0.1:{port}/"
        _until(lambda: len({_pid_of_a_new_connection(url) for _ in range(20)} - {None})
               == workers, "every process to answer")
        return proc, port, url, log
    try:
        yield start
    finally:
        for proc in started:
            _stop(proc)


@pytest.fixture
def served(supervise: Callable[..., Served]) -> Served:
    return supervise(2)


def test_each_api_process_listens_on_a_socket_of_its_own_and_gets_connections(
        served: tuple[subprocess.Popen[bytes], int, str, Path]) -> None:
    proc, port, url, _ = served
    kids = _children(proc.pid)
    listening = _listening_inodes(port)
    # Two listening sockets on the port, one in each process (uvicorn's supervisor shares
    # one socket between its processes: one inode, in both); the parent listens on both and
    # hands each to its process (a replacement gets the same one), its reservation is bound
    # but never listens.
    assert len(listening) == 2
    held = [_socket_inodes(k) & listening for k in kids]
    assert sorted(len(h) for h in held) == [0, 1, 1] or sorted(len(h) for h in held) == [1, 1]
    assert len(set().union(*held)) == 2
    assert _socket_inodes(proc.pid) & listening == listening
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
    # meanwhile every new connection is answered, by the other process (or by the new one:
    # one that reached the dead one's socket before the parent steered waits there for it)
    survivor = (pids - {victim}).pop()
    answered = [_pid_of_a_new_connection(url, timeout=30) for _ in range(10)]
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


def test_a_hung_api_process_is_replaced_within_the_timeout_while_the_other_answers(
        supervise: Callable[..., Served]) -> None:
    proc, _, url, log = supervise(2, heartbeat_timeout=3)
    before = {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
    with pytest.raises(httpx.ReadTimeout):  # blocks the event loop of the process it reaches
        httpx.get(url + "hang", timeout=1)
    t0 = time.monotonic()
    answered: list[int | None] = []

    def replaced() -> bool:
        now = [_pid_of_a_new_connection(url, timeout=0.5) for _ in range(10)]
        answered.extend(now)
        return len(set(now) - before - {None}) == 1 and len(set(now) - {None}) == 2
    _until(replaced, "the hung process replaced")
    elapsed = time.monotonic() - t0
    survivor = set(answered) & before
    assert len(survivor) == 1, answered  # the other answered all along, the hung one never
    hung = (before - survivor).pop()
    assert answered[0] is None or answered[0] in survivor  # (the hung one: a timeout)
    # (its replacement starts as it is signalled: it may answer before the hung one ends)
    _until(lambda: not Path(f"/proc/{hung}").exists(), "the hung process gone", 10)
    # 3 s silent (+ up to 1 s since its last beat), 2.4 s to die, a replacement's start-up
    assert elapsed < 30, elapsed
    text = log.read_text()
    assert f"API process {hung} silent for" in text
    assert "pid_app.py" in text  # its stacks, by faulthandler: where the loop was stuck
    assert proc.poll() is None


def test_a_process_hanging_in_start_up_is_a_start_up_failure(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    port = free_port()
    proc = _start(port, 2, log, app="tests.ledger.hang_app:app", startup_timeout=3)
    try:
        assert proc.wait(60) == 3  # uvicorn's STARTUP_FAILURE, not waiting for ever
    finally:
        _stop(proc)
    text = log.read_text()
    assert "did not serve within 3 s of its start" in text
    assert "hang_app.py" in text  # its stacks
    assert not _listening_inodes(port)


def test_sigttou_keeps_the_last_process_and_sigttin_adds_one(
        supervise: Callable[..., Served]) -> None:
    proc, port, url, log = supervise(1)
    first = {_pid_of_a_new_connection(url) for _ in range(5)}
    proc.send_signal(signal.SIGTTOU)
    _until(lambda: "one API process left, keeping it" in log.read_text(), "SIGTTOU's line")
    assert {_pid_of_a_new_connection(url) for _ in range(10)} == first
    assert len(_listening_inodes(port)) == 1
    proc.send_signal(signal.SIGTTIN)
    _until(lambda: len({_pid_of_a_new_connection(url) for _ in range(20)} - {None}) == 2,
           "a second process answering")
    assert len(_listening_inodes(port)) == 2
    kids = {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
    proc.send_signal(signal.SIGTTOU)  # the newest retires
    _until(lambda: {_pid_of_a_new_connection(url) for _ in range(20)} == first,
           "back to the first process alone")
    proc.send_signal(signal.SIGTTIN)
    _until(lambda: len({_pid_of_a_new_connection(url) for _ in range(20)} - {None}) == 2,
           "a second process again")
    kids |= {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(GRACE_S + 10) == 0
    for k in kids:
        assert not Path(f"/proc/{k}").exists()
    assert not _listening_inodes(port)


def test_a_busy_event_loop_is_not_taken_for_a_hung_one(
        supervise: Callable[..., Served]) -> None:
    proc, _, url, log = supervise(2, heartbeat_timeout=6)
    before = {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
    # CPU-bound for 3 s at a time, half the timeout (the loop's beat: every second)
    answers = [_pid_of_a_new_connection(url + "busy?s=3", timeout=20) for _ in range(4)]
    assert set(answers) <= before, answers
    time.sleep(1)
    assert {_pid_of_a_new_connection(url) for _ in range(20)} - {None} == before
    assert "silent for" not in log.read_text()
    assert proc.poll() is None


def test_a_stranger_listening_on_the_port_is_reported(
        supervise: Callable[..., Served]) -> None:
    _, port, _, log = supervise(2, port_check_s=0.5)
    with socket.socket() as stranger:  # another program of the same user joins the group
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        _until(lambda: f"held by pid {os.getpid()} " in log.read_text(), "the report")
        assert f"inode {_inode(stranger)}" in log.read_text()
    _until(lambda: "no longer listens" in log.read_text(), "the stranger's end")
    assert log.read_text().count("a socket not ours listens") == 1


def test_a_process_hung_by_its_first_request_is_replaced_not_taken_for_a_start_up_failure(
        tmp_path: Path) -> None:
    # Hung within its first second of serving, before its heartbeat task's first turn: its
    # heartbeat starts with its start-up's end, so it is replaced after the 3 s silence
    # (it was once left to the 60 s start-up timeout, and then stopped the whole server).
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _start(port, 1, log, heartbeat_timeout=3, startup_timeout=60)
    url = f"http://127.0.0.1:{port}/"
    try:
        first = None
        while first is None:
            assert proc.poll() is None
            first = _pid_of_a_new_connection(url, timeout=0.5)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(url + "hang", timeout=0.5)
        t0 = time.monotonic()
        _until(lambda: _pid_of_a_new_connection(url, timeout=0.5) not in (None, first),
               "a replacement answering", 30)
        assert time.monotonic() - t0 < 20
        assert f"API process {first} silent for" in log.read_text()
        assert proc.poll() is None
    finally:
        _stop(proc)


def _get_on_a_new_connection(port: int, path: str) -> int:
    """The pid that answered GET ``path`` on a new connection (HTTP/1.0: closed after)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(f"GET {path} HTTP/1.0\r\nHost: t\r\n\r\n".encode())
        data = b""
        while chunk := c.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:60]
    lines = body.split(b"\r\n")  # chunked or not
    return int(lines[1] if len(lines) > 1 else lines[0])


def test_a_stream_of_new_connections_loses_none_through_sighup_and_sigttou(
        supervise: Callable[..., Served]) -> None:
    # Each process has its own accept queue: closing its socket (a graceful stop) resets
    # the connections queued there. Here a replacement takes over the same socket, and a
    # retired process's socket gets no new connection, empties and only then closes. On the
    # code before (each process bound and closed its own socket) a run like this one saw 8
    # resets in 2,060 requests during the SIGHUP alone.
    proc, port, _, log = supervise(3)
    stop = threading.Event()
    answered: list[tuple[float, int]] = []
    failed: list[str] = []

    def client() -> None:
        while not stop.is_set():
            try:  # a little work each: the loops are busy, so the queues are not empty
                answered.append((time.monotonic(), _get_on_a_new_connection(
                    port, "/busy?s=0.003")))
            except (OSError, AssertionError) as exc:
                failed.append(repr(exc))

    def answering(within_s: float) -> set[int]:
        return {pid for t, pid in list(answered) if t > time.monotonic() - within_s}

    clients = [threading.Thread(target=client) for _ in range(8)]
    for t in clients:
        t.start()
    try:
        _until(lambda: len(answering(1)) == 3, "every process answering the stream")
        before = answering(1)
        proc.send_signal(signal.SIGHUP)
        _until(lambda: len(answering(1)) == 3 and not answering(1) & before,
               "three new processes answering", 90)
        during_hup = len(answered)
        proc.send_signal(signal.SIGTTOU)
        _until(lambda: "SIGTTOU: stopping API process" in log.read_text(), "SIGTTOU")
        time.sleep(3)
        _until(lambda: len(answering(1.5)) == 2, "two processes answering")
        time.sleep(1)
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert not failed, (len(failed), failed[:5], len(answered))
    assert during_hup > 300 and len(answered) > during_hup + 300
    assert proc.poll() is None


def test_processes_hanging_during_a_sighup_are_replaced_or_given_up_while_it_waits(
        supervise: Callable[..., Served], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # SIGHUP's replacement of the first process hangs in start-up, for up to the 20 s
    # start-up timeout; meanwhile an old process's event loop blocks. The parent's checks go
    # on throughout the roll: the hung old one is replaced after its 3 s of silence (on the
    # code before, the roll waited out the 20 s first), and the replacement that never
    # served is killed and the roll given up, the others serving.
    flag = tmp_path / "hang-once"
    monkeypatch.setenv("PID_APP_HANG_ONCE", str(flag))
    proc, _, url, log = supervise(2, heartbeat_timeout=3, startup_timeout=20)
    before = {_pid_of_a_new_connection(url) for _ in range(20)} - {None}
    flag.touch()
    proc.send_signal(signal.SIGHUP)
    _until(lambda: not flag.exists(), "the roll's first replacement hanging in start-up")
    with pytest.raises(httpx.ReadTimeout):  # an old process's loop blocks
        httpx.get(url + "hang", timeout=1)
    t0 = time.monotonic()
    _until(lambda: " silent for " in log.read_text(), "the hung old process replaced", 15)
    assert time.monotonic() - t0 < 12
    hung = int(log.read_text().split(" silent for ")[0].rsplit("API process ", 1)[1])
    assert hung in before
    _until(lambda: "(SIGHUP's replacement) did not serve within 20 s" in log.read_text(),
           "the roll given up", 40)
    _until(lambda: not Path(f"/proc/{hung}").exists(), "the hung process gone", 10)
    now = {_pid_of_a_new_connection(url, timeout=5) for _ in range(20)}
    assert None not in now and len(now) == 2 and hung not in now, now
    assert proc.poll() is None


def test_the_steering_program_gives_new_connections_only_to_the_sockets_it_names() -> None:
    # the kernel's own choice (a hash) spreads over the three; the program (SO_ATTACH_
    # REUSEPORT_CBPF) over the group's sockets at the indices named, in listen() order
    port = free_port()
    group = [listening_socket("127.0.0.1", port, 128) for _ in range(3)]

    def spread(n: int = 60) -> list[int]:
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        counts = []
        for s in group:
            s.setblocking(False)
            got = 0
            while True:
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    break
                conn.close()
                got += 1
            counts.append(got)
        for c in clients:
            c.close()
        return counts
    try:
        assert all(spread())  # 60 over three: none empty (2 ** -59 or so)
        steer(group[1], [0, 2])
        counts = spread()
        assert counts[1] == 0 and counts[0] and counts[2], counts
        steer(group[0], [1])
        assert spread() == [0, 60, 0]
        steer(group[2], None)
        assert all(spread())
    finally:
        for s in group:
            s.close()
