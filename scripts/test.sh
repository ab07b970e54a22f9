#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what it needs (npm packages, the
# venv with dev tools, Debian's postgresql), then lint, types, static analysis of the
# contracts, and pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install.sh --test

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
.venv/bin/mypy --strict ledger api
echo "== slither"
./scripts/slither.sh
echo "== pytest"
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$rc"
