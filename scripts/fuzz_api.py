"""Fuzz the API from its OpenAPI document with random draws (the test suite's conformance
test uses the same fixed draws every run, so that it gates on facts, not luck).

Every operation gets ``--examples`` random requests, signed as a partner's client would; any
5xx, or any answer the document does not declare, fails with the request that caused it.
Run it now and then (and before a release); each run draws anew.

Usage: .venv/bin/python scripts/fuzz_api.py [--examples 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=50)
    args = ap.parse_args()
    env = {**os.environ, "ALLIANCE_API_FUZZ": str(max(1, args.examples))}
    test = ("tests/api/test_openapi_conformance.py"
            "::test_every_operation_answers_as_its_document_says")
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                              test], cwd=ROOT, env=env))


if __name__ == "__main__":
    main()
