"""Compile the contracts with the pinned solc through py-solc-x, offline.

The compiler is solc-js from the npm package ``solc`` behind ``scripts/solc-shim.js``, which
speaks native solc's ``--version`` / ``--standard-json`` interface; a native solc named in
``settings.solc_binary`` is used instead where one exists. Version and settings come from
``contracts/solc.json``, the one file Hardhat reads too, so both paths give identical bytecode.
Artifacts are cached under a key hashing every source, the compiler settings and the locked
npm packages (which pin OpenZeppelin): nothing is rebuilt unless one of them changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import solcx

from ..errors import CompilerError
from ..settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = ROOT / "contracts"
SOLC_CONFIG = CONTRACTS_DIR / "solc.json"
SHIM = ROOT / "scripts" / "solc-shim.js"
LOCKFILE = ROOT / "package-lock.json"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def solc_config() -> dict[str, Any]:
    """The pinned compiler version and settings (``contracts/solc.json``)."""
    return dict(json.loads(SOLC_CONFIG.read_text()))


def _sources(contracts_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(contracts_dir.parent)): p.read_text()
            for p in sorted(contracts_dir.rglob("*.sol"))}


def cache_key(sources: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for name, text in sorted(sources.items()):
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    h.update(SOLC_CONFIG.read_bytes())
    if LOCKFILE.exists():
        h.update(LOCKFILE.read_bytes())
    return h.hexdigest()[:24]


def compile_sources(sources: Mapping[str, str], *, solc_binary: Path | None = None
                    ) -> dict[str, Artifact]:
    """Compile ``sources`` (path → text) with the pinned compiler; give artifacts by name."""
    cfg = solc_config()
    binary = (solc_binary or SHIM).resolve()
    input_json = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": cfg["settings"],
    }
    try:
        out = solcx.compile_standard(input_json, solc_binary=binary, base_path=str(ROOT),
                                     allow_paths=[str(ROOT), str(ROOT / "node_modules")])
    except solcx.exceptions.SolcError as exc:
        raise CompilerError(f"solc failed: {exc.message}\n{exc.stderr_data or ''}") from exc
    except OSError as exc:
        raise CompilerError(f"cannot run the compiler at {binary}: {exc}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompilerError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    arts: dict[str, Artifact] = {}
    for source, contracts in out.get("contracts", {}).items():
        if source not in sources:
            continue  # imported library files: only our own contracts become artifacts
        for name, c in contracts.items():
            arts[name] = Artifact(name=name, source=source, abi=c["abi"],
                                  bytecode=c["evm"]["bytecode"]["object"],
                                  deployed_bytecode=c["evm"]["deployedBytecode"]["object"])
    return arts


def compile_contracts(settings: Settings, *, contracts_dir: Path = CONTRACTS_DIR
                      ) -> dict[str, Artifact]:
    """All contracts under ``contracts/``, from the cache when nothing changed."""
    sources = _sources(contracts_dir)
    key = cache_key(sources)
    cache = settings.effective_artifacts_dir / f"contracts-{key}.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        return {n: Artifact(**a) for n, a in data.items()}
    log.info("compiling %d sources with solc %s", len(sources), solc_config()["version"])
    arts = compile_sources(sources, solc_binary=settings.solc_binary)
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Per process: test workers of one run may compile the same key at once.
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({n: asdict(a) for n, a in arts.items()}))
    tmp.replace(cache)
    return arts
