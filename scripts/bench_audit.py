"""Audit benchmark: the audit's rebuild speed over >= 100,000 events on a fresh local anvil,
next to the raw eth_getLogs read rate of the same range (the floor: what the node alone
costs), in one run.

The events are made with batch issues (each line logs Transfer + PointsIssued) sent straight
to the program from the merchant's account (anvil impersonation: the service's outbox is not
what is measured). Prints, each next to its target or floor:
- raw eth_getLogs: logs/s of the node reading the whole range (no decoding);
- audit rebuild: events/s read, decoded and applied by every rule (target >= 10,000/s);
- the full audit with every view compared (balances, orders, positions ...): seconds, views/s.

Usage: .venv/bin/python scripts/bench_audit.py [--events 100000] [--members 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from eth_utils.address import to_checksum_address

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.alliance import Alliance  # noqa: E402
from ledger.audit.engine import run_audit  # noqa: E402
from ledger.audit.source import ChainSource  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.chain.encoding import encode_issue_batch  # noqa: E402
from ledger.merchants.clients import ProgramConfig  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.settings import Settings  # noqa: E402

TARGET = 10_000  # events/s


@dataclass(frozen=True)
class Line:
    member: str
    amount: int
    order_ref: bytes
    release_at: int = 0


def generate(alliance: Alliance, *, events: int, members: int, batch: int) -> int:
    """Issue lines in batches until ``events`` logs exist (2 per line); give lines issued."""
    m = admit_merchant(alliance, name="Bench Store", symbol="BNCH", rate=1,
                       config=ProgramConfig(30 * 86400, 12, 7))
    gw = alliance.gateway
    program = alliance.contracts.program(m.program)
    selector = gw.selector(program.abi, "issueBatch")
    holders = [to_checksum_address(os.urandom(20)) for _ in range(members)]
    account = m.account
    gw.rpc("anvil_setBalance", [account, hex(10**24)])
    gw.rpc("anvil_impersonateAccount", [account])
    lines = (events + 1) // 2
    sent: list[str] = []
    n = 0
    while n < lines:
        part = [Line(holders[(n + i) % members], 1 + (n + i) % 50, os.urandom(32))
                for i in range(min(batch, lines - n))]
        sent.append(gw.rpc("eth_sendTransaction", [{
            "from": account, "to": program.address, "gas": hex(29_000_000),
            "data": "0x" + encode_issue_batch(selector, part).hex()}]))
        n += len(part)
    for tx in sent[-3:]:
        receipt = None
        while receipt is None:
            receipt = gw.receipt(tx)
            time.sleep(0.05)
        assert receipt["status"] == 1, receipt
    gw.rpc("anvil_stopImpersonatingAccount", [account])
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--members", type=int, default=2_000)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alliance-bench-audit-",
                                     ignore_cleanup_errors=True) as tmp:
        settings = Settings(data_dir=Path(tmp))
        try:
            alliance = Alliance.open(settings)
            t0 = time.perf_counter()
            lines = generate(alliance, events=args.events, members=args.members,
                             batch=args.batch)
            print(f"generated {lines:,} issue lines ({2 * lines:,} program logs) in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            gw = alliance.gateway
            registry = alliance.contracts.registry.address
            artifacts = alliance.contracts.artifacts
            head = gw.block_number()

            source = ChainSource(gw, artifacts, registry=registry, head=head)
            kinds = source.discover(from_block=0).kinds()
            t0 = time.perf_counter()
            raw = source.raw_logs(kinds, from_block=0)
            raw_s = time.perf_counter() - t0

            rebuild = run_audit(gw, artifacts, registry=registry, from_block=0, head=head,
                                check_views=False)
            rb_s = rebuild.timings["rebuild"]
            full = run_audit(gw, artifacts, registry=registry, from_block=0, head=head)
            assert full.clean, [f.as_dict() for f in full.findings[:5]]
            chk_s = full.timings["check"]
            print(f"raw eth_getLogs of blocks 0..{head}: {raw:,} logs in {raw_s:.2f} s = "
                  f"{raw / raw_s:,.0f} logs/s (the floor: the node alone)")
            print(f"audit rebuild: {rebuild.events:,} events in {rb_s:.2f} s = "
                  f"{rebuild.events / rb_s:,.0f} events/s  (target >= {TARGET:,}: "
                  f"{rebuild.events / rb_s / TARGET:.2f}x; {raw_s / rb_s:.2f}x of the raw read "
                  "rate)")
            print(f"full audit, clean: rebuild {full.timings['rebuild']:.2f} s + "
                  f"{full.views_asked:,} views compared in {chk_s:.2f} s = "
                  f"{full.views_asked / chk_s:,.0f} views/s; total "
                  f"{sum(full.timings.values()):.2f} s")
            alliance.close()
        finally:
            anvil.stop(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
