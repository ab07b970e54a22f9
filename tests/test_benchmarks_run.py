"""The README's figures come from the scripts under ``scripts/``; a script that no longer runs
is a figure nobody can measure again. The points benchmark (its ledger layer is also what
``bench_lag.py`` loads) runs here on a few operations, on its own fresh anvil: it once crashed
at its first receipt after the outbox's ``_settle`` gained an argument, and no test saw it.
The clearing benchmark's API figure and its chain-alone reference run here small too. Their
figures are not checked here (this is not a timed test), only that they are measured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ARTIFACT_CACHE

ROOT = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str) -> str:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=600,
                         # The suite's compiled contracts (the script compiles into its
                         # temporary directory otherwise).
                         env=dict(os.environ, ALLIANCE_ARTIFACTS_DIR=str(ARTIFACT_CACHE)))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    return out


def test_the_points_benchmark_runs_and_prints_each_figure_next_to_its_target() -> None:
    # With the HTTP half: its batch figure is printed next to the ledger layer's of the run.
    out = _bench("bench_points.py", "--ops", "400")
    for line in ("ledger layer: 400 issue ops confirmed on chain",
                 "the chain alone (the same batches pre-signed", "JSON-RPC round trips per op:",
                 "gas per op in a batch of 200:",
                 "gas redeem at another merchant (cross-merchant):",
                 "sweep of 100 members' expired lots:",
                 "HTTP API, batch requests of 200: 400 ops confirmed",
                 "HTTP batch vs the ledger layer of the same run:",
                 "HTTP API, single requests from 50 clients:"):
        assert line in out, out[-4000:]


def test_the_points_benchmark_runs_on_postgresql() -> None:
    # --pg: the store on a throwaway PostgreSQL server, the HTTP batch figure included.
    out = _bench("bench_points.py", "--ops", "400", "--pg", "--api-shapes", "process")
    for line in ("store: PostgreSQL", "ledger layer: 400 issue ops confirmed on chain",
                 "HTTP API, batch requests of 200: 400 ops confirmed",
                 "HTTP batch vs the ledger layer of the same run:"):
        assert line in out, out[-4000:]


def test_the_clearing_benchmark_prints_the_api_next_to_the_chain_alone() -> None:
    out = _bench("bench_clearing.py", "--redemptions", "400", "--skip-gas")
    for line in ("API: 400 cross-merchant redemptions in 4 batch requests confirmed",
                 "the service's CPU per redemption (funding done, clients in their own "
                 "process):",
                 "the chain alone (the same redemption batches, 4 redeemBatch transactions",
                 "API vs the chain alone:"):
        assert line in out, out[-4000:]


def test_the_clearing_benchmark_runs_with_the_indexer_in_its_own_process_and_its_replays() -> None:
    out = _bench("bench_clearing.py", "--redemptions", "400", "--skip-gas", "--api-shape",
                 "process", "--replay-indexer", "1", "--replay-checks", "1")
    for line in ("API: 400 cross-merchant redemptions in 4 batch requests confirmed",
                 "the indexer in a process of its own",
                 "indexer process ",
                 "the indexer replaying blocks",
                 "the redeem checks of the same 400 redemptions signed again, in this thread, "
                 "CPU per line: alone ",
                 "API vs the chain alone:"):
        assert line in out, out[-4000:]
