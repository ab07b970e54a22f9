#!/usr/bin/env bash
# Install everything (idempotent) and bring the demo alliance up: local anvil chain,
# compiled and deployed contracts, three demo merchants with credentials printed, demo
# members with points, and the API with /docs on http://127.0.0.1:8000 (Ctrl-C stops it).
# Extra arguments go to `alliance up` (e.g. --port 8080, --no-seed).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/alliance up "$@"
