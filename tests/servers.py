"""Starting real HTTP servers in tests: a free loopback port, waiting for /healthz, and stopping
the server's process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, *,
                       timeout_s: float) -> None:
    """Poll ``url``/healthz until it answers 200; fail with the server's log if the process
    exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server at {url} did not come up:\n{log.read_text()}")
        time.sleep(0.2)


def stop_group(proc: subprocess.Popen[bytes], *, grace_s: float = 30) -> None:
    """Stop a server started in its own session: SIGTERM to its process group, then SIGKILL
    if it has not ended within ``grace_s``."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
