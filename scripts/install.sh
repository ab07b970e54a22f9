#!/usr/bin/env bash
# Install what the project needs, idempotently, on a fresh machine (Python 3.11, Node 20,
# root; only PyPI, npm and Debian's packages reachable). Nothing downloads a binary at run
# time: the compiler is solc-js and anvil comes from its npm package.
#   scripts/install.sh          runtime: npm packages, .venv with the project
#   scripts/install.sh --test   also the test tools: dev extras, Debian's postgresql
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# Node tools (solc-js, OpenZeppelin, Hardhat 2, anvil), exactly as locked.
if [ ! -x node_modules/.bin/anvil ] || [ package-lock.json -nt node_modules/.install-stamp ]; then
    npm ci --no-audit --no-fund
    touch node_modules/.install-stamp
fi

# Python: one venv with the project (and its dev extras for tests).
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
extras=""
[ "$want_test" = 1 ] && extras="[dev]"
stamp=".venv/.install-stamp${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e ".${extras}"
    touch "$stamp"
fi

# Debian packages the tests use: a real PostgreSQL server, and Chromium for the browser tests
# (driven by PyPI playwright; `playwright install` cannot download a browser here).
if [ "$want_test" = 1 ]; then
    pkgs=()
    command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
        || pkgs+=(postgresql)
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
    # A CJK font, so the member app's Chinese screens render in headless screenshots.
    fc-list :lang=zh 2>/dev/null | grep -q . || pkgs+=(fonts-wqy-microhei)
    # The HTTP load generator of scripts/bench_http.py (Debian's wrk, with LuaJIT).
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${pkgs[@]}"
    fi
fi
