"""The indexer in an OS process of its own, supervised by the process that runs the workers.

A follower round needs ~65 ms of CPU, but beside the outbox and the API's request threads it
took 0.5-1 s of wall time waiting for their GIL (scripts/bench_lag.py). :class:`IndexerProcess`
runs it in a child process instead (``python -m ledger.indexer_main``, the same code as
``alliance indexer``) and keeps it running:

- the child gets the parent's settings on its stdin (secrets included, never on its command
  line or in its environment), with the parent's node URL, so it never starts a chain of its
  own; then the pipe stays open: when the parent goes, however it goes (``kill -9`` too), the
  child reads end-of-file and stops;
- the child is elected like the workers (``WorkerLock`` named ``indexer``): two never write
  the read model at once, whoever started them;
- a supervising thread restarts a child that died (a quick death again and again backs off);
- :meth:`IndexerProcess.stop` closes the pipe (the child stops between two rounds), and
  terminates, then kills, a child that has not gone within ``stop_timeout_s``.

The child's wake-up is its own look at the chain's head every ``HEAD_POLL_S`` (the outbox's
receipts that wake an indexer thread are in the other process).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from pydantic import SecretStr

from ..alliance import Alliance
from ..settings import Settings
from ..worker import Worker
from .follower import Follower

log = logging.getLogger(__name__)

CHILD_MODULE = "ledger.indexer_main"
# Seconds between two looks at the child.
CHECK_S = 0.2
# A child that dies sooner than this after its start is restarted after a growing delay (a
# configuration that cannot work must not spawn a Python process five times a second).
QUICK_DEATH_S = 5.0
MAX_BACKOFF_S = 10.0


def child_settings(alliance: Alliance) -> dict[str, Any]:
    """The settings a child needs to open the same alliance: the parent's, secrets revealed,
    with the node the parent reached (a child never starts a chain)."""
    out: dict[str, Any] = {}
    for name, value in alliance.settings:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        out[name] = value
    out["rpc_url"] = alliance.gateway.url
    out["chain_id"] = alliance.gateway.chain_id
    return json.loads(json.dumps(out, default=str))  # type: ignore[no-any-return]


def read_settings(line: bytes) -> Settings:
    """The settings a parent wrote on the child's stdin (see :func:`child_settings`)."""
    return Settings(**json.loads(line)["settings"])


class IndexerProcess(Worker):
    """Runs the indexer in a child process and keeps it running (see the module docstring).

    ``follower`` is the same indexer, never started here: it answers
    :meth:`synced_blocks` for this process's health and metrics."""

    name = "indexer"

    def __init__(self, alliance: Alliance, follower: Follower, *, check_s: float = CHECK_S,
                 stop_timeout_s: float = 15.0) -> None:
        super().__init__(idle_sleep_s=check_s)
        self.alliance = alliance
        self.follower = follower
        self.stop_timeout_s = stop_timeout_s
        # The child's command: anything that speaks ledger.indexer_main's protocol (settings
        # on the first line of stdin, end-of-file to stop); scripts/bench_lag.py times its
        # rounds with its own.
        self.command = [sys.executable, "-m", CHILD_MODULE]
        self.starts = 0  # children started (the first and every restart)
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._quick_deaths = 0
        self._restart_at = 0.0

    @property
    def pid(self) -> int | None:
        """The running child's process id (None: none runs now)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def synced_blocks(self) -> dict[str, int]:
        return self.follower.synced_blocks()

    def process_once(self) -> int:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return 0
        now = time.monotonic()
        if proc is not None:
            self._proc = None
            lived = now - self._started_at
            self._quick_deaths = self._quick_deaths + 1 if lived < QUICK_DEATH_S else 0
            delay = 0.0 if self._quick_deaths <= 1 else min(
                MAX_BACKOFF_S, 0.5 * 2 ** (self._quick_deaths - 2))
            self._restart_at = now + delay
            log.warning("the indexer process (pid %d) exited with status %s after %.1f s; "
                        "restarting it in %.1f s", proc.pid, proc.returncode, lived, delay)
        if now < self._restart_at:
            return 0
        self._spawn()
        return 0

    def _spawn(self) -> None:
        proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE,
            # Its own session: a Ctrl-C at the terminal reaches the parent, which stops it.
            start_new_session=True)
        assert proc.stdin is not None
        payload = {"settings": child_settings(self.alliance), "parent": os.getpid()}
        try:
            proc.stdin.write(json.dumps(payload).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError:
            log.warning("the indexer process (pid %d) went before it read its settings",
                        proc.pid)
        self._proc = proc
        self._started_at = time.monotonic()
        self.starts += 1
        log.info("indexer process started (pid %d)", proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)  # no restart from here on
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()  # end-of-file: the child stops between two rounds
            except BrokenPipeError:
                pass
        try:
            proc.wait(self.stop_timeout_s)
            return
        except subprocess.TimeoutExpired:
            log.warning("the indexer process (pid %d) did not stop in %.0f s; terminating it",
                        proc.pid, self.stop_timeout_s)
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                proc.send_signal(sig)
                proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return
