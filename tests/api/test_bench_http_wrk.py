"""scripts/bench_http.py's load generator: wrk replaying pre-signed requests (issue 14)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from .conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_http", ROOT / "scripts" / "bench_http.py")
assert _spec is not None and _spec.loader is not None
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)


def test_wrk_replays_each_presigned_issue_once_and_counts_every_answer(
        live_server: LiveServer, tmp_path: Path) -> None:
    # The test command installs wrk (scripts/install.sh --test): missing, this fails, not skips.
    assert shutil.which("wrk") is not None, "wrk is missing: run ./scripts/install.sh --test"
    m = live_server.merchant
    reqs = tmp_path / "requests.bin"
    bench_http.presign(reqs, live_server.url, [(m.key_id, m.secret)], 3000, "wrk-test")
    r = bench_http.wrk(live_server.url, bench_http.ISSUE, 4, 2, 1, reqs)
    # Every pre-signed request is a new order with its own key and nonce: all accepted.
    assert r["n"] > 0 and r["statuses"] == {202: r["n"]}, r
    assert r["p50"] > 0 and r["p99"] >= r["p50"]
    # The same file again: the requests already sent are captured requests now, refused as
    # replays (401) and counted as such; the run does not hide them.
    again = bench_http.wrk(live_server.url, bench_http.ISSUE, 4, 1, 1, reqs)
    assert again["statuses"].get(401, 0) > 0, again
    bare = bench_http.wrk(live_server.url, "/health", 4, 1)
    assert bare["statuses"] == {200: bare["n"]}, bare
