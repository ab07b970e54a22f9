"""Several API processes, each on a listening socket of its own (``alliance serve --workers
N``; the app named by import string, as everywhere in the ledger package).

uvicorn's supervisor binds one socket and hands it to every process: wrk's 50 connections,
opened at once, land on whichever process accepts first and stay there (61/39 and 71/29
between two processes, 2026-11-27), so the busier process also serves more clients. Here
each process binds its own socket on the same address with ``SO_REUSEPORT``, and the kernel
hashes each new connection to one of the listening sockets (Linux).

The port stays this server's alone:

- another program that holds it (bound without ``SO_REUSEPORT``, or listening) refuses the
  parent's trial bind, made without the option, before any process starts: the command fails
  up front, as uvicorn's bind did;
- a second ``alliance serve`` on the same address fails on the parent's lock (an abstract
  Unix socket named for the address, released with the process, so never stale); without it
  two servers started at once could both pass the trial bind and then share the port;
- the parent keeps a socket bound with ``SO_REUSEPORT`` (never listening: it takes no
  connection) for as long as it runs, so the port stays held.

The parent binds and listens on every process's socket itself and hands it to the process
(inherited at spawn), as nginx's master does with ``reuseport`` and as envoy's hot restart
passes its listeners to the new process: with ``SO_REUSEPORT`` each socket has its own accept
queue, and closing the last descriptor of a listening socket resets the connections queued on
it (unless ``net.ipv4.tcp_migrate_req=1``). A process's replacement (SIGHUP, a dead or hung
one) gets the same socket, so what was queued for the old one is accepted by the new one. A
socket that goes for good (SIGTTOU) is first taken out of the kernel's choice with a classic
BPF program on the group (``SO_ATTACH_REUSEPORT_CBPF``: pick among the serving processes'
sockets), its queue left to empty, its process stopped, and only then closed. The same
program keeps new connections off a socket whose process is not serving (starting, dead,
silent for ``STEER_SILENT_S``): they wait in its queue no longer than that takes to be seen.

A process that dies is started again on its socket (new connections are steered to the
others meanwhile, see above); one that fails before it serves (the app, the store)
stops them all, as uvicorn's supervisor does. SIGINT or SIGTERM stops every process
through uvicorn's own graceful shutdown (``timeout_graceful_shutdown``); one still running a
few seconds after that is killed. SIGHUP replaces the processes one at a time, each once
its replacement serves, as uvicorn's supervisor does (the checks below go on meanwhile: an
old process that hangs is replaced, a replacement that never serves is killed and the
replacing given up). SIGTTIN adds a process and SIGTTOU
retires one (never the last), as uvicorn's and gunicorn's do.

A process alive but hung (its event loop blocked: a C call stuck, a deadlock) would keep its
socket, and with it its share of new connections, which would hang. Each process proves its
event loop alive: a task in the loop writes the time into memory shared with the parent
every second (:class:`BeatingServer`), so a blocked loop stops it. The parent kills a process
silent for ``heartbeat_timeout`` seconds (``alliance serve --timeout-worker-healthcheck``):
SIGUSR1 first (``faulthandler`` writes its threads' stacks to the log: why it hung), then
SIGTERM, then SIGKILL after ``HUNG_GRACE_S``; a replacement is started on its socket (new
connections went to the others since it fell silent, ``STEER_SILENT_S``). This is
gunicorn's heartbeat (the worker touches a file from its loop), through shared memory;
uvicorn 0.54's own supervisor pings its processes, but a thread of theirs answers, so a
blocked event loop still answers the ping. A process that does not serve within
``startup_timeout`` of its start (its loop blocked or its lifespan waiting before it
serves) is a start-up failure: it is killed and the others are stopped, as for one that
exits in start-up.

Any program of the same user can bind the port with ``SO_REUSEPORT`` after we started and
take a share of the connections (the kernel admits sockets of the same user to the group).
Every ``PORT_CHECK_S`` the parent compares the sockets listening on the port
(/proc/net/tcp) with its own and logs an error naming a stranger; every process's ``/ready``
then says not ready, with the reason (:func:`port_stranger`, memory shared with the parent).
Run the server as a user of its own. The program above names sockets by their place in the
kernel's group, which a stranger's joining and leaving can change unseen: once a stranger has
been seen, the parent no longer steers (the kernel's hash chooses, as before this program).
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import logging
import multiprocessing
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger(__name__)

# How long after uvicorn's graceful timeout a process may take to close (the app's shutdown:
# the alliance's pools) before it is killed.
CLOSE_MARGIN_S = 5.0
# How often the parent looks for a process that died.
POLL_S = 0.5
# How long a process started on SIGHUP may take to listen (it imports web3 and opens the
# alliance first: seconds on a busy machine) before the restart is given up.
READY_TIMEOUT_S = 120.0
# How long a process's event loop may be silent before it is killed and replaced (the CLI's
# default): far above a loop busy on one slow request on a loaded 2-core machine (a loop
# CPU-bound for 3 s is not taken for a hang at 6 s, tests/ledger/test_serving.py), far
# below a client's patience.
HEARTBEAT_TIMEOUT_S = 30.0
# How often a process's event loop writes its heartbeat.
BEAT_S = 1.0
# How long a hung process has, after SIGTERM, before SIGKILL (its loop is blocked: it rarely
# ends on SIGTERM; its socket keeps taking connections meanwhile).
HUNG_GRACE_S = 2.0
# How often the parent looks for a stranger's socket listening on its port.
PORT_CHECK_S = 10.0
# A process whose loop has been silent this long gets no new connections until it beats
# again (they would wait in its queue); its queued ones stay for it or its replacement.
STEER_SILENT_S = 3.0
# How long a socket leaving for good (SIGTTOU) keeps its process after it gets no new
# connections: a handshake begun before (its SYN hashed to this socket) completes within a
# client's round trip, and lands in this socket's queue.
HANDSHAKE_S = 1.0
# How long a leaving socket's queue may take to empty (its process accepting) before it is
# closed anyway (the rest are reset; logged).
DRAIN_TIMEOUT_S = 10.0
# How long a stopping process waits for the connections it accepted last to send their
# first request (a round trip) before uvicorn's shutdown closes those still silent.
FIRST_REQUEST_S = 1.0
# Linux's socket options for a reuseport group's program (asm-generic/socket.h).
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
# The size of the stranger's description shared with the API processes.
NOTE_BYTES = 240


class PortInUseError(OSError):
    """The address is held by another program or another ``alliance serve``."""


def own_sockets_supported() -> bool:
    """True where the kernel spreads connections over sockets bound with ``SO_REUSEPORT``
    (Linux); elsewhere ``alliance serve`` keeps uvicorn's one shared socket."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with ``SO_REUSEPORT`` (and ``SO_REUSEADDR``, as
    uvicorn binds), not listening yet."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def hold_port(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Claim (host, port) for this server (see the module's docstring): its port (the one the
    system chose for port 0) and the sockets that hold it, to keep open while it runs.
    Raises PortInUseError if another program or another ``alliance serve`` has it."""
    held: list[socket.socket] = []
    try:
        if port:
            held.append(_lock(host, port))
            trial = socket.socket(_family(host), socket.SOCK_STREAM)
            try:
                trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                trial.bind((host, port))
            except OSError as exc:
                raise PortInUseError(exc.errno, f"{host}:{port} is in use: {exc.strerror}"
                                     ) from exc
            finally:
                trial.close()
        try:
            reservation = reuseport_socket(host, port)
        except OSError as exc:  # taken between the trial and now
            raise PortInUseError(exc.errno, f"{host}:{port} is in use: {exc.strerror}"
                                 ) from exc
        held.append(reservation)
        if not port:
            port = reservation.getsockname()[1]
            held.append(_lock(host, port))
        return port, held
    except BaseException:
        for s in held:
            s.close()
        raise


def _lock(host: str, port: int) -> socket.socket:
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0alliance-serve:{host}:{port}")
    except OSError as exc:
        lock.close()
        raise PortInUseError(exc.errno, f"{host}:{port} is served by another alliance serve"
                             ) from exc
    return lock


class BeatingServer(uvicorn.Server):
    """uvicorn's server, whose event loop writes ``time.monotonic()`` (system-wide on Linux)
    into ``beat`` every ``BEAT_S`` once it serves: the parent's proof that the loop runs."""

    def __init__(self, config: uvicorn.Config, beat: ctypes.c_double) -> None:
        super().__init__(config)
        self.beat = beat

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        beating = asyncio.create_task(self._beat(), name="alliance-heartbeat")
        try:
            await super().serve(sockets=sockets)
        finally:
            beating.cancel()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:  # at once: a request may block the loop before the task's turn
            self.beat.value = time.monotonic()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown, after the connections accepted just before it have
        sent their first request: uvicorn closes a connection that has none yet, and one
        whose request sits unread in its buffer is closed with a reset. The listening
        socket stops being watched first; it stays open in the parent (and in a
        replacement), so what is queued on it is not lost."""
        for server in self.servers:
            server.close()  # no more accepts here
        deadline = time.monotonic() + FIRST_REQUEST_S
        while time.monotonic() < deadline and any(
                getattr(c, "cycle", False) is None for c in self.server_state.connections):
            await asyncio.sleep(0.01)
        await super().shutdown(sockets=sockets)

    async def _beat(self) -> None:
        while True:
            if self.started:  # listening: before that, the parent's start-up timeout runs
                self.beat.value = time.monotonic()
            await asyncio.sleep(BEAT_S)


class PortNote:
    """What the parent saw on the port that is not ours, shared with every API process
    (``/ready`` reads it: a flag, then the text; no lock, no I/O)."""

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        self.flag = context.RawValue(ctypes.c_int, 0)
        self.text = context.RawArray(ctypes.c_char, NOTE_BYTES)

    def set(self, text: str) -> None:
        self.flag.value = 0
        self.text.value = text.encode()[:NOTE_BYTES - 1]
        self.flag.value = 1

    def clear(self) -> None:
        self.flag.value = 0

    def get(self) -> str | None:
        return self.text.value.decode(errors="replace") if self.flag.value else None


# This process's note, in an API process of the supervisor (None elsewhere).
_note: PortNote | None = None


def port_stranger() -> str | None:
    """In an API process of ``alliance serve --workers N``: what the supervisor says listens
    on the port beside us (another program's socket, taking a share of the connections), or
    None. None in any other process."""
    return None if _note is None else _note.get()


def supervised() -> bool:
    """True in an API process of the supervisor (its ``/ready`` checks the port)."""
    return _note is not None


def serve_one(config: uvicorn.Config, beat: ctypes.c_double, sock: socket.socket,
              note: PortNote) -> None:
    """One API process (in its own process): uvicorn's server on ``sock`` (listening, the
    parent's, inherited) until SIGINT or SIGTERM, writing its heartbeat into ``beat``."""
    global _note
    _note = note
    config.configure_logging()
    # The parent sends SIGUSR1 to a hung process before it kills it: the stacks say why.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    BeatingServer(config, beat).run(sockets=[sock])


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A socket of the port's ``SO_REUSEPORT`` group, listening (it joins the group's end)."""
    sock = reuseport_socket(host, port)
    try:
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def steering_program(indices: list[int]) -> list[tuple[int, int, int, int]]:
    """A classic BPF program for a reuseport group that gives each new connection to one of
    the group's sockets at ``indices``, at random (the kernel's own choice is a hash; for
    TCP the choice is made once, on the SYN). As (code, jt, jf, k) instructions."""
    ld_random = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS, at SKF_AD_OFF + SKF_AD_RANDOM
    mod_k, jeq_k, ret_k = 0x04 | 0x90, 0x05 | 0x10, 0x06  # BPF_ALU|BPF_MOD, BPF_JMP|BPF_JEQ
    prog = [(ld_random, 0, 0, (-0x1000 + 56) & 0xFFFFFFFF), (mod_k, 0, 0, len(indices))]
    for j, index in enumerate(indices[:-1]):
        prog += [(jeq_k, 0, 1, j), (ret_k, 0, 0, index)]
    return prog + [(ret_k, 0, 0, indices[-1])]


def steer(sock: socket.socket, indices: list[int] | None) -> None:
    """Attach :func:`steering_program` to ``sock``'s reuseport group, or (None) detach it:
    the kernel's hash over every socket again."""
    if indices is None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
        except OSError:  # none attached
            pass
        return
    code = b"".join(struct.pack("HBBI", *i) for i in steering_program(indices))
    buf = ctypes.create_string_buffer(code)
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;} (the kernel copies)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                    struct.pack("HP", len(code) // 8, ctypes.addressof(buf)))


@dataclass
class ApiProcess:
    """A process of :func:`serve_one`, its socket (the parent's copy) and its heartbeat (0
    until it serves)."""

    process: BaseProcess
    beat: ctypes.c_double
    sock: socket.socket
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def serves(self) -> bool:
        """True once it has served (its start-up ended)."""
        return bool(self.beat.value)

    def silent_for(self, now: float) -> float | None:
        """Seconds since its last heartbeat; None before it serves."""
        return now - self.beat.value if self.beat.value else None


# Not a program: the group changed under the one attached.
CHANGED = [-1]

Target = Callable[[uvicorn.Config, ctypes.c_double, socket.socket, PortNote], None]


class Supervisor:
    """``workers`` processes of :func:`serve_one` on ``config``'s address; :meth:`run` until
    SIGINT/SIGTERM (or :meth:`stop`), replacing a process that dies or hangs."""

    def __init__(self, config: uvicorn.Config, *, workers: int,
                 heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
                 startup_timeout: float = READY_TIMEOUT_S,
                 port_check_s: float = PORT_CHECK_S,
                 target: Target = serve_one,
                 ) -> None:
        if heartbeat_timeout <= BEAT_S or startup_timeout <= 0:
            raise ValueError(f"heartbeat_timeout must exceed the beat ({BEAT_S} s) and "
                             f"startup_timeout be positive, not {heartbeat_timeout}, "
                             f"{startup_timeout}")
        self.config = config
        self.workers = workers
        self.heartbeat_timeout = heartbeat_timeout
        self.startup_timeout = startup_timeout
        self.port_check_s = port_check_s
        self.target = target
        self.processes: list[ApiProcess] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._wake = threading.Event()  # a signal came (a child ended, SIGHUP, ...)
        self._hup = threading.Event()
        self._resize: list[int] = []  # SIGTTIN / SIGTTOU, in arrival order
        self._strangers: set[str] = set()  # not ours, at the last check
        self._reported: set[str] = set()  # not ours, logged
        self._context = multiprocessing.get_context("spawn")  # as uvicorn's processes
        self._note = PortNote(self._context)
        # Our listening sockets in the kernel's group order (a socket joins at the end; one
        # that closes is replaced by the last): what the steering program's indices name.
        self._group: list[socket.socket] = []
        self._leaving: socket.socket | None = None  # SIGTTOU's, until it is closed
        self._steered: list[int] | None = None  # the program attached now (None: none)
        self._order_known = True  # False once a stranger was seen in the group
        self._status = 0
        self._next_port_check = 0.0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _signalled(self, sig: int) -> None:
        if sig in (signal.SIGINT, signal.SIGTERM):
            self._stop.set()
        elif sig == signal.SIGHUP:
            self._hup.set()
        elif sig in (signal.SIGTTIN, signal.SIGTTOU):
            self._resize.append(sig)
        self._wake.set()

    def _start(self, sock: socket.socket | None = None) -> ApiProcess:
        """A new process on ``sock`` (a replacement: the old one's socket), or on a new
        socket that joins the group."""
        if sock is None:
            cfg = self.config
            sock = listening_socket(cfg.host, cfg.port, cfg.backlog)
            self._group.append(sock)
        beat = self._context.RawValue(ctypes.c_double, 0.0)
        p = self._context.Process(target=self.target, args=(self.config, beat, sock,
                                                            self._note),
                                  name="alliance-api")
        p.start()
        return ApiProcess(p, beat, sock)

    def _close(self, sock: socket.socket) -> None:
        """Close one of our listening sockets for good (its queue is reset)."""
        i = self._group.index(sock)
        self._group[i] = self._group[-1]
        self._group.pop()
        sock.close()

    def run(self) -> int:
        """Serve until stopped; the exit status for the command (uvicorn's STARTUP_FAILURE
        if a process failed before it served). Raises PortInUseError before starting any
        process if the address is taken."""
        cfg = self.config
        cfg.port, held = hold_port(cfg.host, cfg.port)
        # SIGCHLD wakes the parent at once when a process dies: until it steers new
        # connections off the dead one's socket, they wait there for its replacement.
        previous = {sig: signal.signal(sig, lambda s, _: self._signalled(s))
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN,
                                signal.SIGTTOU, signal.SIGCHLD)}
        try:
            self.processes = [self._start() for _ in range(self.workers)]
            log.info("Uvicorn running on http://%s:%d in %d processes, each on its own "
                     "socket (SO_REUSEPORT)", cfg.host, cfg.port, self.workers)
            self._next_port_check = time.monotonic() + self.port_check_s
            while not self._stop.is_set():
                self._wake.wait(POLL_S)
                self._wake.clear()
                if self._stop.is_set():
                    break
                if self._hup.is_set():
                    self._hup.clear()
                    self._restart_all()
                while self._resize and not self._stop.is_set():
                    self._add_or_retire(self._resize.pop(0))
                self._tick()
        finally:
            self._shut_down()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for s in held + self._group:
                s.close()
        return self._status

    def _tick(self) -> bool:
        """One round of the parent's checks, also run while a SIGHUP or a SIGTTOU waits:
        replace dead and hung processes, steer new connections to serving ones, look for a
        stranger on the port. True if the server is to stop."""
        if not self._stop.is_set():
            status = self._keep_alive()
            if status:
                self._status = status
        if not self._stop.is_set():
            self._steer()
            if time.monotonic() >= self._next_port_check:
                self._check_port()
                self._next_port_check = time.monotonic() + self.port_check_s
        return self._stop.is_set()

    def _keep_alive(self) -> int:
        """Replace each process that ended or hung; STARTUP_FAILURE (and stop) if one failed
        before it served."""
        for i, child in enumerate(self.processes):
            p = child.process
            if not p.is_alive():
                p.join()
                if p.exitcode == STARTUP_FAILURE:
                    log.error("API process %s failed to start: stopping", p.pid)
                    self._stop.set()
                    return STARTUP_FAILURE
                log.warning("API process %s ended (exit code %s): starting another",
                            p.pid, p.exitcode)
            else:
                now = time.monotonic()
                silent = child.silent_for(now)
                if silent is None:
                    if now - child.started_at <= self.startup_timeout:
                        continue
                    log.error("API process %s did not serve within %.0f s of its start: "
                              "killed, stopping (its stacks are above)", p.pid,
                              self.startup_timeout)
                    self._kill_hung(child)
                    self._stop.set()
                    return STARTUP_FAILURE
                if silent <= self.heartbeat_timeout:
                    continue
                log.error("API process %s silent for %.0f s (its event loop is blocked; "
                          "its stacks are above): killed, starting another", p.pid, silent)
                # on its socket: what it had queued is accepted by the replacement
                self.processes[i] = self._start(child.sock)  # imports while the hung one ends
                self.restarts += 1
                self._steer()
                self._kill_hung(child)
                continue
            self.processes[i] = self._start(child.sock)
            self.restarts += 1
        return 0

    def _serving_indices(self) -> list[int]:
        now = time.monotonic()
        serving = set()
        for c in self.processes:
            silent = c.silent_for(now)
            if silent is not None and silent <= STEER_SILENT_S and c.process.is_alive():
                serving.add(id(c.sock))
        return [i for i, s in enumerate(self._group)
                if id(s) in serving and s is not self._leaving]

    def _steer(self) -> None:
        """Keep new connections off our sockets whose process does not serve now (and off
        a leaving one): a program on the group while one is, none when all serve."""
        if not self._order_known or not self._group:
            return
        indices: list[int] | None = self._serving_indices()
        if not indices or len(indices) == len(self._group):
            # all serve (the kernel's hash, as without a program), or none does (all
            # starting: the connections wait in the queues)
            indices = None
        if indices == self._steered:
            return
        try:
            steer(self._group[0], indices)
        except OSError as exc:
            log.warning("could not steer new connections on port %d (%s): the kernel's "
                        "hash chooses among all the processes' sockets", self.config.port,
                        exc)
            self._order_known = False
            return
        if indices is not None:
            log.info("new connections go to the sockets %s of %d (the others' processes do "
                     "not serve now, or leave)", indices, len(self._group))
        self._steered = indices

    def _kill_hung(self, child: ApiProcess) -> None:
        """SIGUSR1 (its stacks to the log), SIGTERM, then SIGKILL after HUNG_GRACE_S."""
        p = child.process
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            if p.pid is not None and p.is_alive():
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    break
            time.sleep(0.2)  # faulthandler writes before uvicorn's shutdown starts
        p.join(HUNG_GRACE_S)
        if p.is_alive():
            p.kill()
            p.join()

    def _add_or_retire(self, sig: int) -> None:
        """SIGTTIN: one process more; SIGTTOU: one fewer, never below one (as uvicorn's
        and gunicorn's supervisors)."""
        if sig == signal.SIGTTIN:
            self.processes.append(self._start())
            log.info("SIGTTIN: started API process %s (%d processes)",
                     self.processes[-1].pid, len(self.processes))
        elif len(self.processes) <= 1:
            log.info("SIGTTOU: one API process left, keeping it")
        else:
            old = self.processes.pop()
            log.info("SIGTTOU: stopping API process %s (%d processes)", old.pid,
                     len(self.processes))
            self._retire(old)
        self.workers = len(self.processes)

    def _retire(self, old: ApiProcess) -> None:
        """Take ``old``'s socket out of the group without resetting a connection: no new
        ones (the steering program), the handshakes begun finish, its process accepts what
        is queued, stops gracefully, and then the socket closes."""
        self._leaving = old.sock
        self._steer()
        if self._steered is not None:
            self._wait(HANDSHAKE_S)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while accept_queue(old.sock) and time.monotonic() < deadline:
                if self._wait(0.05):
                    break
        else:
            log.warning("SIGTTOU: new connections could not be kept off API process %s's "
                        "socket: those queued on it when it closes are reset", old.pid)
        self._end(old.process)
        left = accept_queue(old.sock)
        if left:
            log.warning("SIGTTOU: %d connections still queued on API process %s's socket "
                        "are reset", left, old.pid)
        self._leaving = None
        self._close(old.sock)
        self._steered = CHANGED  # the indices name other sockets now: set it again
        self._steer()

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` in the parent's rounds (:meth:`_tick`); True if stopping."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._stop.is_set()
            if self._stop.wait(min(left, POLL_S / 5)) or self._tick():
                return True

    def _end(self, p: BaseProcess) -> None:
        """Stop one process through uvicorn's graceful shutdown; kill it if it outlasts it.
        The parent's checks go on meanwhile."""
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + _grace(self.config) + CLOSE_MARGIN_S
        while p.is_alive() and time.monotonic() < deadline:
            p.join(POLL_S / 5)
            if not self._stop.is_set():
                self._tick()
        if p.is_alive():
            p.kill()
            p.join()

    def _check_port(self) -> None:
        """Log an error for each socket listening on the port that is not one of ours (the
        parent holds every process's socket: another program of the same user, bound with
        SO_REUSEPORT, would take a share of the connections) and tell the processes (their
        ``/ready``); seen in two checks in a row, so a socket joining or leaving between the
        two reads is not taken for one."""
        foreign = socket_inodes(self.config.port, TCP_LISTEN) - {_inode(s) for s in self._group}
        if foreign and self._order_known:
            self._order_known = False  # its place in the group, and ours after it: unknown
            steer(self._group[0], None)
            self._steered = None
        for inode in sorted((foreign & self._strangers) - self._reported):
            self._reported.add(inode)
            holders = [pid for pid in _pids() if inodes_held(pid, {inode})]
            who = (", ".join(f"pid {pid} ({_name(pid)})" for pid in holders)
                   or "a process of another user or namespace")
            log.error("a socket not ours listens on port %d (inode %s, held by %s): it takes "
                      "a share of the connections; run alliance serve as a user of its own",
                      self.config.port, inode, who)
        for inode in sorted(self._reported - foreign):
            self._reported.discard(inode)
            log.warning("the socket not ours on port %d (inode %s) no longer listens",
                        self.config.port, inode)
        if self._reported:
            self._note.set(f"a socket not ours listens on port {self.config.port} "
                           f"({len(self._reported)}; see the supervisor's log): it takes a "
                           "share of the connections")
        else:
            self._note.clear()
        self._strangers = foreign

    def _restart_all(self) -> None:
        """SIGHUP (as uvicorn's supervisor): replace every process, one at a time, each
        only once its replacement serves, on the same socket (what is queued there is
        accepted by the new one); the old one ends through uvicorn's graceful shutdown.
        The parent's checks go on throughout: an old process that hangs is replaced, and a
        replacement that does not serve within ``startup_timeout`` is killed and the
        replacing given up (the others keep serving)."""
        log.info("SIGHUP: replacing the API processes one at a time")
        for i in range(len(self.processes)):
            if i >= len(self.processes) or self._stop.is_set():
                return
            new = self._start(self.processes[i].sock)
            while not new.serves:
                late = time.monotonic() - new.started_at > self.startup_timeout
                if not new.process.is_alive() or late or self._wait(0.1):
                    if not self._stop.is_set():
                        log.error("API process %s (SIGHUP's replacement) did not serve "
                                  "within %.0f s of its start: killed (its stacks are "
                                  "above), keeping %s and the rest", new.pid,
                                  self.startup_timeout, self.processes[i].pid)
                    if new.process.is_alive():
                        self._kill_hung(new)
                    new.process.join()
                    return
            old, self.processes[i] = self.processes[i], new
            self._end(old.process)

    def _shut_down(self) -> None:
        for child in self.processes:
            p = child.process
            if p.is_alive() and p.pid is not None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + _grace(self.config) + CLOSE_MARGIN_S
        for child in self.processes:
            p = child.process
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                log.warning("API process %s still running: killed", p.pid)
                p.kill()
                p.join()


# TCP states in /proc/net/tcp{,6}
TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


def socket_inodes(port: int, state: str) -> set[str]:
    """The inodes of this machine's TCP sockets on local ``port`` in ``state`` (one of the
    ``TCP_*`` codes of Linux's /proc/net/tcp and tcp6)."""
    return {f[9] for f in _tcp_rows()
            if f[3] == state and int(f[1].rsplit(":", 1)[1], 16) == port}


def _tcp_rows() -> Iterator[list[str]]:
    """The fields of each row of /proc/net/tcp and tcp6 (a table that cannot be read: none)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            yield line.split()


def inodes_held(pid: int, inodes: set[str]) -> set[str]:
    """Which of the sockets ``inodes`` process ``pid`` holds open (its /proc/PID/fd)."""
    held: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # ended, or another user's
        return held
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held.add(target[8:-1])
    return held


def sockets_held(pid: int, inodes: set[str]) -> int:
    """How many of the sockets ``inodes`` process ``pid`` holds open (its /proc/PID/fd)."""
    return len(inodes_held(pid, inodes))


def _inode(sock: socket.socket) -> str:
    return os.readlink(f"/proc/self/fd/{sock.fileno()}")[8:-1]


def accept_queue(sock: socket.socket) -> int:
    """How many connections wait in listening socket ``sock``'s accept queue (its rx_queue
    in /proc/net/tcp; 0 if not found)."""
    inode = _inode(sock)
    return next((int(f[4].split(":")[1], 16) for f in _tcp_rows() if f[9] == inode), 0)


def _pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _grace(config: uvicorn.Config) -> float:
    grace = config.timeout_graceful_shutdown
    return float(grace) if grace is not None else 0.0
