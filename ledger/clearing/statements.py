"""Clearing statements: per merchant and closed period, every act that moved value between
it and another merchant, rebuilt from the chain alone, with the digest anchored on chain.

The Clearing's ``Cleared`` events give every counterparty's value; the programs' events in
the same transactions give the underlying redemptions and conversions.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from ..alliance import Alliance
from ..errors import LedgerNotFoundError, LedgerValidationError
from .service import KIND_NAMES, _int


@dataclass(frozen=True)
class Statement:
    """One merchant's statement for one period: the document, its CSV rendering and hashes."""

    document: dict[str, Any]
    canonical: bytes
    hash: str
    anchored_hash: str | None

    @property
    def matches_anchor(self) -> bool:
        return self.anchored_hash is not None and self.anchored_hash == self.hash

    def to_csv(self) -> str:
        return statement_csv(self.document, self.hash)


def anchor_statements(alliance: Alliance, *, period: int) -> list[Statement]:
    """Anchor the hash of every merchant's statement of a closed period (those not yet
    anchored); give the statements."""
    clearing = alliance.contracts.clearing
    info = clearing.period(_int(period, "period", low=1))
    if info.closed_at == 0:
        raise LedgerValidationError(f"period {period} is not closed", field="period")
    acts = _period_acts(alliance, period)
    out = []
    for mid in range(1, info.merchants + 1):
        st = _statement_from(alliance, period, mid, info.closed_at, acts)
        if st.anchored_hash is None:
            alliance.operator.transact(to=clearing.address, data=clearing.encode(
                "anchorStatement", period, mid, bytes.fromhex(st.hash[2:])))
            st = Statement(st.document, st.canonical, st.hash, st.hash)
        out.append(st)
    return out


def _topic(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def _hex(value: Any) -> str:
    raw = bytes(value) if not isinstance(value, str) else bytes.fromhex(value.removeprefix("0x"))
    return "0x" + raw.hex()


@dataclass(frozen=True)
class _Act:
    """One ``Cleared`` event and the program events (redemptions, a conversion, refunds) of
    its transaction that make it up, each as a statement line without the side it is seen
    from."""

    kind: str
    debtor: int
    creditor: int
    value: int
    lines: list[dict[str, Any]]


def _period_acts(alliance: Alliance, p: int, *, involving: int | None = None) -> list[_Act]:
    """Every act cleared in period ``p`` (only those ``involving`` a merchant, if given),
    from the Clearing's logs and the receipts of their transactions."""
    gw = alliance.gateway
    contracts = alliance.contracts
    clearing = contracts.clearing
    programs: dict[int, str] = {}
    cleared_topic = "0x" + gw.event_topic(clearing.abi, "Cleared").hex()
    logs = gw.get_logs(address=clearing.address, from_block=contracts.deployment.block,
                       to_block=gw.block_number(), topics=[cleared_topic, _topic(p)])
    receipts: dict[str, dict[str, Any]] = {}
    acts = []
    for _, args, raw in clearing.decode_logs(logs):
        debtor, creditor = int(args["debtor"]), int(args["creditor"])
        if involving is not None and involving not in (debtor, creditor):
            continue
        value, rate, kind = int(args["value"]), int(args["rate"]), KIND_NAMES[int(args["kind"])]
        tx = _hex(raw["transactionHash"])
        if tx not in receipts:
            receipt = gw.receipt(tx)
            assert receipt is not None
            receipts[tx] = receipt
        # The program whose points moved: the debtor's, or for a refund the creditor's.
        points_merchant = creditor if kind == "refund" else debtor
        acceptor = debtor if kind == "refund" else creditor
        if points_merchant not in programs:
            programs[points_merchant] = str(contracts.registry.merchant(points_merchant).program)
        program = contracts.program(programs[points_merchant])
        lines: list[dict[str, Any]] = []
        for name, ev, lg in program.decode_logs(
                [lg for lg in receipts[tx]["logs"]
                 if str(lg["address"]).lower() == program.address.lower()]):
            if kind == "redemption" and name == "PointsRedeemed" \
                    and int(ev["merchantId"]) == acceptor:
                pts, val = int(ev["amount"]), int(ev["amount"]) * rate
            elif kind == "refund" and name == "RedemptionRefunded" \
                    and int(ev["merchantId"]) == acceptor:
                pts, val = int(ev["amount"]), int(ev["amount"]) * rate
            elif kind == "conversion" and name == "PointsConverted" \
                    and int(ev["toMerchantId"]) == acceptor:
                pts, val = int(ev["spent"]), value
            else:
                continue
            lines.append({
                "kind": kind, "tx_hash": tx, "block_number": int(lg["blockNumber"]),
                "log_index": int(lg["logIndex"]), "points_of": points_merchant,
                "accepted_by": acceptor, "order_ref": _hex(ev["orderRef"]), "points": pts,
                "rate": rate, "value": val})
        if sum(ln["value"] for ln in lines) != value:
            raise LedgerNotFoundError(f"the lines of {tx} do not add up to its cleared value")
        acts.append(_Act(kind, debtor, creditor, value, lines))
    return acts


def statement(alliance: Alliance, *, period: int, merchant_id: int) -> Statement:
    """The statement of ``merchant_id`` for ``period``, rebuilt from chain logs.

    Every counterparty line (gross receivable, gross payable, net), every underlying
    redemption, conversion and refund with its transaction, and totals; ``hash`` is the
    keccak-256 of the canonical JSON (sorted keys, no spaces, UTF-8), the value anchored on
    chain for a closed period."""
    contracts = alliance.contracts
    p = _int(period, "period", low=1, high=contracts.clearing.current_period())
    count = contracts.registry.merchant_count()
    mid = _int(merchant_id, "merchant_id", low=1, high=max(count, 1))
    if mid > count:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    return _statement_from(alliance, p, mid, contracts.clearing.period(p).closed_at,
                           _period_acts(alliance, p, involving=mid))


def _statement_from(alliance: Alliance, p: int, mid: int, closed_at: int, acts: list[_Act]
                    ) -> Statement:
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
    on_chain_net = clearing.position_of(p, mid)[0]
    if receivable - payable != on_chain_net:
        raise LedgerNotFoundError("statement lines do not add up to the on-chain net; "
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
                     None if anchored == bytes(32) else "0x" + anchored.hex())


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
