"""The offline contract toolchain: Hardhat and py-solc-x agree, the cache is honest, compile
errors come back as CompilerError with solc's message."""

from __future__ import annotations

import json
import os
import shutil
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
    contracts = tmp_path / "contracts"
    shutil.copytree(ROOT / "contracts", contracts, ignore=shutil.ignore_patterns("*.json"))
    settings = Settings(data_dir=tmp_path / "data")
    first = compile_contracts(settings, contracts_dir=contracts)
    cached = list((tmp_path / "data" / "artifacts").glob("contracts-*.json"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    again = compile_contracts(settings, contracts_dir=contracts)
    assert again == first
    assert cached[0].stat().st_mtime_ns == mtime  # served from the cache, not rewritten
    reg = contracts / "AllianceRegistry.sol"
    reg.write_text(reg.read_text().replace("OPERATOR_ROLE\")", "OPERATOR_ROLE\") ", 1)
                   + "\n// changed\n")
    compile_contracts(settings, contracts_dir=contracts)
    assert len(list((tmp_path / "data" / "artifacts").glob("contracts-*.json"))) == 2


def test_compile_error_reports_solc_message() -> None:
    with pytest.raises(CompilerError, match="ParserError"):
        compile_sources({"contracts/Broken.sol": "pragma solidity ^0.8.0; contract B { uint x }"})
