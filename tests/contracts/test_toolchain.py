"""The offline contract toolchain: Hardhat and py-solc-x agree, the cache is honest, compile
errors come back as CompilerError with solc's message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ledger.contracts.compiler import Artifact, compile_contracts, compile_sources
from ledger.errors import CompilerError
from ledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_hardhat_and_py_solc_x_give_identical_bytecode(artifacts: dict[str, Artifact]
                                                       ) -> None:
    env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="1")
    subprocess.run(["npx", "--no-install", "hardhat", "compile", "--quiet"], cwd=ROOT,
                   check=True, capture_output=True, env=env)
    compared = 0
    for name, art in artifacts.items():
        if not art.deployed_bytecode:
            continue  # interfaces
        hh = json.loads((ROOT / "build/hardhat/artifacts" / art.source / f"{name}.json")
                        .read_text())
        assert hh["deployedBytecode"][2:] == art.deployed_bytecode, name
        assert hh["bytecode"][2:] == art.bytecode, name
        compared += 1
    assert compared >= 3


def test_artifacts_are_cached_until_a_source_changes(tmp_path: Path) -> None:
    # Two small sources, one importing the other, prove what the whole contracts/ tree would
    # (the key hashes every source), in a second of solc instead of compiling it all twice.
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "Base.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
        "contract Base { uint256 public x = 1; }\n")
    (contracts / "Top.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
        'import {Base} from "./Base.sol";\ncontract Top is Base { }\n')
    settings = Settings(data_dir=tmp_path / "data")
    first = compile_contracts(settings, contracts_dir=contracts)
    assert set(first) == {"Base", "Top"} and first["Top"].deployed_bytecode
    cached = list((tmp_path / "data" / "artifacts").glob("contracts-*.json"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    again = compile_contracts(settings, contracts_dir=contracts)
    assert again == first
    assert cached[0].stat().st_mtime_ns == mtime  # served from the cache, not rewritten
    # A change in the imported source alone is a new key: compiled again, cached beside.
    base = contracts / "Base.sol"
    base.write_text(base.read_text().replace("x = 1", "x = 2"))
    changed = compile_contracts(settings, contracts_dir=contracts)
    assert changed["Top"].deployed_bytecode != first["Top"].deployed_bytecode
    assert len(list((tmp_path / "data" / "artifacts").glob("contracts-*.json"))) == 2
    assert not list((tmp_path / "data" / "artifacts").glob("*.tmp"))


def test_compile_error_reports_solc_message() -> None:
    with pytest.raises(CompilerError, match="ParserError"):
        compile_sources({"contracts/Broken.sol": "pragma solidity ^0.8.0; contract B { uint x }"})
