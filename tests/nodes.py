"""Real chain nodes for tests that need one of their own: Hardhat Network (``hardhat node``, the
second node implementation) and anvil with flags the session's anvil does not have (a block
every second, a zero base fee). Each runs on a free loopback port and is ended by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.chain.anvil import ANVIL, CHAIN_ID, free_port, rpc_chain_id

ROOT = Path(__file__).resolve().parents[1]
HARDHAT = ROOT / "node_modules" / ".bin" / "hardhat"


@contextmanager
def _node(cmd: list[str], url: str, log: Path, *, timeout_s: float) -> Iterator[str]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while rpc_chain_id(url, timeout=0.5) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not answer at {url}:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        # The node's own process group (start_new_session): npx-style wrappers leave a child.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextmanager
def hardhat_node(tmp: Path) -> Iterator[str]:
    """``hardhat node`` (Hardhat 2, chain id 31337, automine, the same dev accounts as anvil
    and no anvil_* methods); gives its URL."""
    port = free_port()
    with _node([str(HARDHAT), "node", "--hostname", "127.0.0.1", "--port", str(port)],
               f"http://127.0.0.1:{port}", tmp / "hardhat.log", timeout_s=60) as url:
        yield url


@contextmanager
def anvil_node(tmp: Path, *flags: str) -> Iterator[str]:
    """anvil with extra ``flags`` (``--block-time 1``, ``--base-fee 0`` …); gives its URL."""
    port = free_port()
    with _node([str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--chain-id",
                str(CHAIN_ID), "--gas-limit", "30000000", *flags],
               f"http://127.0.0.1:{port}", tmp / "anvil.log", timeout_s=20) as url:
        yield url
