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
  connection) for as long as it runs, so the port stays held while a process restarts.

A process that dies is started again (its socket went with it: the kernel hashes new
connections to the others meanwhile); one that fails before it serves (the app, the store,
the bind) stops them all, as uvicorn's supervisor does. SIGINT or SIGTERM stops every process
through uvicorn's own graceful shutdown (``timeout_graceful_shutdown``); one still running a
few seconds after that is killed. SIGHUP replaces the processes one at a time, each once
its replacement listens, as uvicorn's supervisor does.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
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


def serve_one(config: uvicorn.Config) -> None:
    """One API process (in its own process): bind its own socket, then uvicorn's server on
    it until SIGINT or SIGTERM."""
    config.configure_logging()
    try:
        sock = reuseport_socket(config.host, config.port)
    except OSError as exc:
        log.error("API process %d could not bind %s:%d: %s", os.getpid(), config.host,
                  config.port, exc)
        sys.exit(STARTUP_FAILURE)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """``workers`` processes of :func:`serve_one` on ``config``'s address; :meth:`run` until
    SIGINT/SIGTERM (or :meth:`stop`), restarting a process that dies."""

    def __init__(self, config: uvicorn.Config, *, workers: int,
                 target: Callable[[uvicorn.Config], None] = serve_one) -> None:
        self.config = config
        self.workers = workers
        self.target = target
        self.processes: list[BaseProcess] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._hup = threading.Event()
        self._context = multiprocessing.get_context("spawn")  # as uvicorn's processes

    def stop(self) -> None:
        self._stop.set()

    def _start(self) -> BaseProcess:
        p = self._context.Process(target=self.target, args=(self.config,),
                                  name="alliance-api")
        p.start()
        return p

    def run(self) -> int:
        """Serve until stopped; the exit status for the command (uvicorn's STARTUP_FAILURE
        if a process failed before it served). Raises PortInUseError before starting any
        process if the address is taken."""
        cfg = self.config
        cfg.port, held = hold_port(cfg.host, cfg.port)
        previous = {sig: signal.signal(sig, lambda *_: self._stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self._hup.set())
        status = 0
        try:
            self.processes = [self._start() for _ in range(self.workers)]
            log.info("Uvicorn running on http://%s:%d in %d processes, each on its own "
                     "socket (SO_REUSEPORT)", cfg.host, cfg.port, self.workers)
            while not self._stop.wait(POLL_S):
                if self._hup.is_set():
                    self._hup.clear()
                    self._restart_all()
                for i, p in enumerate(self.processes):
                    if p.is_alive():
                        continue
                    p.join()
                    if p.exitcode == STARTUP_FAILURE:
                        log.error("API process %s failed to start: stopping", p.pid)
                        status = STARTUP_FAILURE
                        self._stop.set()
                        break
                    log.warning("API process %s ended (exit code %s): starting another",
                                p.pid, p.exitcode)
                    self.processes[i] = self._start()
                    self.restarts += 1
        finally:
            self._shut_down()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for s in held:
                s.close()
        return status

    def _restart_all(self) -> None:
        """SIGHUP (as uvicorn's supervisor): replace every process, one at a time, each
        only once its replacement listens (the kernel then hashes new connections to it);
        the old one ends through uvicorn's graceful shutdown."""
        log.info("SIGHUP: replacing the API processes one at a time")
        for i, old in enumerate(list(self.processes)):
            new = self._start()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not _listens(new.pid, self.config.port):
                if (not new.is_alive() or self._stop.is_set()
                        or time.monotonic() > deadline):
                    log.error("API process %s did not start listening: keeping %s",
                              new.pid, old.pid)
                    if new.is_alive():
                        new.kill()
                    new.join()
                    return
                time.sleep(0.1)
            self.processes[i] = new
            if old.is_alive() and old.pid is not None:
                os.kill(old.pid, signal.SIGTERM)
            old.join(_grace(self.config) + CLOSE_MARGIN_S)
            if old.is_alive():
                old.kill()
                old.join()

    def _shut_down(self) -> None:
        for p in self.processes:
            if p.is_alive() and p.pid is not None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + _grace(self.config) + CLOSE_MARGIN_S
        for p in self.processes:
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
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == state and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    return inodes


def sockets_held(pid: int, inodes: set[str]) -> int:
    """How many of the sockets ``inodes`` process ``pid`` holds open (its /proc/PID/fd)."""
    held = 0
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def _listens(pid: int | None, port: int) -> bool:
    """True once process ``pid`` holds a socket listening on ``port``."""
    return pid is not None and sockets_held(pid, socket_inodes(port, TCP_LISTEN)) > 0


def _grace(config: uvicorn.Config) -> float:
    grace = config.timeout_graceful_shutdown
    return float(grace) if grace is not None else 0.0
