"""The local chain: anvil from the npm package ``@foundry-rs/anvil``.

``ensure_running`` reuses an anvil this data dir already runs, or starts one on a free
loopback port with ``--state`` under ``<data_dir>/chain`` (loaded on start, written every few
seconds and on a clean stop), so a restart loses nothing. ``stop`` ends it with SIGTERM so it
writes its state first.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChainError
from ..settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
CHAIN_ID = 31337
STATE_INTERVAL_S = 5


@dataclass(frozen=True)
class ChainStatus:
    """What the data dir's local chain is doing."""

    running: bool
    url: str | None
    pid: int | None
    state_file: Path


def chain_dir(settings: Settings) -> Path:
    return settings.data_dir / "chain"


def _info_path(settings: Settings) -> Path:
    return chain_dir(settings) / "anvil.json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rpc_chain_id(url: str, timeout: float = 1.0) -> int | None:
    """The chain id the node at ``url`` answers with, or None if nothing answers."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    req = urllib.request.Request(url, data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(json.loads(resp.read())["result"], 16)
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(settings: Settings) -> ChainStatus:
    """Whether this data dir's anvil runs and answers."""
    state = chain_dir(settings) / "state.json"
    info_path = _info_path(settings)
    if not info_path.exists():
        return ChainStatus(False, None, None, state)
    info = json.loads(info_path.read_text())
    url, pid = str(info["url"]), int(info["pid"])
    running = _pid_alive(pid) and rpc_chain_id(url) is not None
    return ChainStatus(running, url if running else None, pid if running else None, state)


def start(settings: Settings, *, timeout_s: float = 20.0) -> str:
    """Start anvil for this data dir and wait until it answers; give its URL."""
    if not ANVIL.exists():
        raise ChainError(f"anvil not found at {ANVIL}: run `npm ci` (scripts/install.sh)")
    cdir = chain_dir(settings)
    cdir.mkdir(parents=True, exist_ok=True)
    port = settings.anvil_port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID),
           "--state", str(cdir / "state.json"), "--state-interval", str(STATE_INTERVAL_S),
           "--gas-limit", "60000000",
           # anvil writes old blocks' states to ~/.foundry/anvil/tmp by default and leaves them
           # there: tens of GB after a few benchmark runs. The service reads state at the
           # latest block only, so older states are not persisted, and any cache stays here.
           "--max-persisted-states", "0", "--cache-path", str(cdir / "cache")]
    if settings.anvil_block_time:
        cmd += ["--block-time", str(settings.anvil_block_time)]
    log_file = (cdir / "anvil.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log_file.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChainError(f"anvil exited with {proc.returncode}; see {cdir / 'anvil.log'}")
        if rpc_chain_id(url, timeout=0.5) is not None:
            _info_path(settings).write_text(json.dumps({"url": url, "pid": proc.pid}))
            log.info("anvil %d answering at %s", proc.pid, url)
            return url
        time.sleep(0.05)
    proc.terminate()
    raise ChainError(f"anvil did not answer at {url} within {timeout_s} s")


def ensure_running(settings: Settings) -> str:
    """The URL of this data dir's anvil, started if it is not running."""
    st = status(settings)
    if st.running and st.url:
        return st.url
    return start(settings)


def stop(settings: Settings, *, timeout_s: float = 15.0) -> bool:
    """Stop this data dir's anvil, letting it write its state; give whether one ran."""
    info_path = _info_path(settings)
    if not info_path.exists():
        return False
    pid = int(json.loads(info_path.read_text())["pid"])
    info_path.unlink()
    if not _pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = pid if not _pid_alive(pid) else 0
        if finished and not _group_alive(pid):
            # (the npm wrapper can exit before the anvil binary it started has written its
            # state: the data dir was then still being written when a caller removed it)
            return True
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    return True


def _group_alive(pgid: int) -> bool:
    """Whether any process of the session anvil was started in (its own) is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
