"""Stopping the local chain waits for every process of it: the npm wrapper exited before the
anvil binary it started had written its state, and a caller removing the data dir right after
(the benchmarks' temporary directory) failed with 'Directory not empty: chain'."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ledger.chain import anvil
from ledger.chain.anvil import _group_alive
from ledger.settings import Settings


def test_stopping_the_chain_leaves_no_process_of_it_and_its_dir_can_be_removed(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    anvil.start(settings)
    pid = int(json.loads((tmp_path / "data" / "chain" / "anvil.json").read_text())["pid"])
    assert _group_alive(pid)
    assert anvil.stop(settings)
    assert not _group_alive(pid)
    shutil.rmtree(tmp_path / "data")
    assert not os.path.exists(tmp_path / "data")
