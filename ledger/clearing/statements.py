"""Clearing statements: per merchant and closed period, every act that moved value between
it and another merchant, rebuilt from what the chain logged, with the digest anchored on chain.

The Clearing's ``Cleared`` events give every counterparty's value; the programs' events in
the same transactions give the underlying redemptions and conversions. The indexer keeps both
in the clearing read model (:mod:`ledger.clearing.projection`); a statement reads them there,
with the chain's views read at the block that model reflects (``as_of_block``), instead of
scanning the logs from the deployment block on every request.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from .. import limits
from ..alliance import Alliance
from ..errors import (
    LedgerIntegrityError,
    LedgerNotFoundError,
    LedgerValidationError,
    ReadModelNotReadyError,
)
from ..indexer import repos as cursors
from ..indexer.follower import Follower
from ..types import MerchantId
from . import repos as clearing_repos
from .projection import CURSOR, ClearingProjection
from .repos import ActRecord


@dataclass(frozen=True)
class Statement:
    """One merchant's statement for one period: the document, its CSV rendering and hashes."""

    document: dict[str, Any]
    canonical: bytes
    hash: str
    anchored_hash: str | None
    # The block the statement reflects (read model and chain views alike; not in the
    # document, whose hash must not change as the chain grows).
    as_of_block: int

    @property
    def matches_anchor(self) -> bool:
        return self.anchored_hash is not None and self.anchored_hash == self.hash

    def to_csv(self) -> str:
        return statement_csv(self.document, self.hash)


def anchor_statements(alliance: Alliance, *, period: int) -> list[Statement]:
    """Anchor the hash of every merchant's statement of a closed period (those not yet
    anchored); give the statements.

    An anchor is final, so it is never taken from a read model that lags: the clearing
    projection is first brought up to the confirmed head, and the period must be closed as
    of that block."""
    clearing = alliance.contracts.clearing
    p = limits.value(period, "period", low=1)
    catch_up(alliance)
    as_of = _synced_block(alliance)
    info = clearing.period(p, block=as_of)
    if info.closed_at == 0:
        raise LedgerValidationError(f"period {period} is not closed", field="period")
    acts = _period_acts(alliance, p)
    out = []
    for mid in range(1, info.merchants + 1):
        st = _statement_from(alliance, p, mid, info.closed_at, acts, as_of)
        if st.anchored_hash is None:
            alliance.operator.transact(to=clearing.address, data=clearing.encode(
                "anchorStatement", p, mid, bytes.fromhex(st.hash[2:])))
            st = Statement(st.document, st.canonical, st.hash, st.hash, as_of)
        out.append(st)
    return out


def catch_up(alliance: Alliance) -> None:
    """Bring the clearing read model up to the confirmed head now (tools that run without the
    service's indexer worker, and anchors, which must not lag)."""
    Follower(alliance, [ClearingProjection(alliance)]).catch_up()


def _synced_block(alliance: Alliance) -> int:
    """The block the clearing read model reflects."""
    with alliance.store.read_session() as s:
        cursor = cursors.get_cursor(s, CURSOR)
    if cursor is None:
        raise ReadModelNotReadyError("the clearing read model is not built yet: the indexer "
                                     "has not run a round; retry shortly")
    return cursor[0]


def _period_acts(alliance: Alliance, p: int, *, involving: int | None = None
                 ) -> list[ActRecord]:
    """Every act cleared in period ``p`` (only those ``involving`` a merchant, if given),
    from the read model."""
    with alliance.store.read_session() as s:
        acts = clearing_repos.period_acts(s, period=p, involving=involving)
    for act in acts:
        if sum(ln["value"] for ln in act.lines) != act.value:
            tx = act.lines[0]["tx_hash"] if act.lines else "an act"
            raise LedgerIntegrityError(f"the lines of {tx} do not add up to its cleared value")
    return acts


def statement(alliance: Alliance, *, period: int, merchant_id: MerchantId) -> Statement:
    """The statement of ``merchant_id`` for ``period``, from the clearing read model (the
    indexed ``Cleared`` acts and their program events) and the chain's views read at the
    block that model reflects (``as_of_block``: a consistent answer, never a mix of two
    blocks).

    Every counterparty line (gross receivable, gross payable, net), every underlying
    redemption, conversion and refund with its transaction, and totals; ``hash`` is the
    keccak-256 of the canonical JSON (sorted keys, no spaces, UTF-8), the value anchored on
    chain for a closed period."""
    contracts = alliance.contracts
    p = limits.value(period, "period", low=1, high=contracts.clearing.current_period())
    count = contracts.registry.merchant_count()
    mid = limits.value(merchant_id, "merchant_id", low=1, high=max(count, 1))
    if mid > count:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    as_of = _synced_block(alliance)
    return _statement_from(alliance, p, mid, contracts.clearing.period(p, block=as_of).closed_at,
                           _period_acts(alliance, p, involving=mid), as_of)


def _statement_from(alliance: Alliance, p: int, mid: int, closed_at: int,
                    acts: list[ActRecord], as_of: int) -> Statement:
    """Merchant ``mid``'s statement of period ``p`` from the period's acts."""
    contracts = alliance.contracts
    clearing = contracts.clearing
    gross: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    lines: list[dict[str, Any]] = []
    for act in acts:
        if mid not in (act.debtor, act.creditor):
            continue
        other = act.creditor if mid == act.debtor else act.debtor
        gross[other][0 if mid == act.creditor else 1] += act.value
        side = {"counterparty": other,
                "direction": "receivable" if mid == act.creditor else "payable"}
        lines.extend({**line, **side} for line in act.lines)
    counterparties = [{"merchant_id": other, "receivable": g[0], "payable": g[1],
                       "net": g[0] - g[1]} for other, g in sorted(gross.items())]
    receivable = sum(c["receivable"] for c in counterparties)
    payable = sum(c["payable"] for c in counterparties)
    on_chain_net = clearing.position_of(p, mid, block=as_of)[0]
    if receivable - payable != on_chain_net:
        raise LedgerIntegrityError("statement lines do not add up to the on-chain net; "
                                   "the logs may be incomplete")
    lines.sort(key=lambda ln: (ln["block_number"], ln["log_index"]))
    doc = {
        "statement_version": 1,
        "chain_id": alliance.gateway.chain_id,
        "clearing": clearing.address,
        "settlement_unit": contracts.deployment.settlement_unit,
        "period": p,
        "closed_at": closed_at or None,
        "merchant_id": mid,
        "counterparties": counterparties,
        "totals": {"receivable": receivable, "payable": payable, "net": on_chain_net},
        "lines": lines,
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    digest = "0x" + keccak(canonical).hex()
    anchored = clearing.statement_hash(p, mid) if closed_at else bytes(32)
    return Statement(doc, canonical, digest,
                     None if anchored == bytes(32) else "0x" + anchored.hex(), as_of)


def statement_csv(doc: dict[str, Any], digest: str) -> str:
    """The statement as CSV: a summary block, the counterparty lines, then every act."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["statement", "period", "merchant_id", "settlement_unit", "receivable",
                "payable", "net", "sha3"])
    t = doc["totals"]
    w.writerow(["summary", doc["period"], doc["merchant_id"], doc["settlement_unit"],
                t["receivable"], t["payable"], t["net"], digest])
    w.writerow([])
    w.writerow(["counterparty", "receivable", "payable", "net"])
    for c in doc["counterparties"]:
        w.writerow([c["merchant_id"], c["receivable"], c["payable"], c["net"]])
    w.writerow([])
    cols = ["kind", "direction", "counterparty", "points_of", "accepted_by", "order_ref",
            "points", "rate", "value", "tx_hash", "block_number", "log_index"]
    w.writerow(cols)
    for line in doc["lines"]:
        w.writerow([line[c] for c in cols])
    return buf.getvalue()
