"""Cross-merchant clearing: positions, period close, settlement, caps and statements.

Operator actions (close, settle, sweep, statement anchors, off-chain confirmations for a
suspended creditor) are sent by the operator's key and wait for their receipt; caps and
acceptance are admin actions through the timelock; settlement tokens are minted by the
minter's key. Settlement is pulled: each creditor claims its pro-rata share of what debtors
paid, to its payout address; ``settle`` claims for every creditor of a period, in pages.
Merchant actions (escrow deposits, confirming an off-chain payment) go through the outbox
like every merchant mutation. Statements are rebuilt from the chain's logs alone: the
Clearing's ``Cleared`` events give every counterparty's value, the programs' events in the
same transactions give the underlying redemptions and conversions.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..errors import LedgerNotFoundError, LedgerValidationError
from ..merchants import repos as merchant_repos
from ..merchants.service import govern
from ..outbox import repos as outbox_repos
from ..points.service import OperationView, operation_view, order_ref

KIND_NAMES = {1: "redemption", 2: "conversion", 3: "refund"}
MAX_VALUE = 2**100
# Creditors paid per claim transaction by ``settle`` (a claim costs ~40k gas per creditor).
CLAIM_PAGE = 200


@dataclass(frozen=True)
class PositionView:
    """A merchant's net in a period (positive: owed to it) and, for a closed period, what it
    still has to pay or receive."""

    merchant_id: int
    period: int
    net: int
    foreign_accepted: int
    paid: int
    received: int
    outstanding: int


@dataclass(frozen=True)
class PeriodView:
    """A clearing period (``closed_at`` None: the current, open one)."""

    period: int
    closed_at: int | None
    merchants: int
    total_owed: int
    total_received: int
    escrow: int
    positions: list[PositionView]
    total_paid: int = 0


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


def _int(value: Any, field: str, *, low: int = 0, high: int = MAX_VALUE) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise LedgerValidationError(f"{field} must be an integer from {low} to {high}",
                                    field=field)
    return value


def _merchant_ids(alliance: Alliance) -> list[int]:
    return list(range(1, alliance.contracts.registry.merchant_count() + 1))


# ---------------------------------------------------------------------- reads


def current_period(alliance: Alliance) -> int:
    return alliance.contracts.clearing.current_period()


def period_view(alliance: Alliance, period: int | None = None) -> PeriodView:
    """Every merchant's position in ``period`` (default: the open one)."""
    clearing = alliance.contracts.clearing
    cur = clearing.current_period()
    p = cur if period is None else _int(period, "period", low=1, high=cur)
    info = clearing.period(p)
    closed = info.closed_at != 0
    ids = _merchant_ids(alliance) if not closed else list(range(1, info.merchants + 1))
    out = [_position(alliance, p, mid, closed) for mid in ids]
    return PeriodView(p, info.closed_at or None, len(ids), info.total_owed, info.total_received,
                      info.escrow, out, info.total_paid)


def position(alliance: Alliance, *, merchant_id: int, period: int | None = None
             ) -> PositionView:
    """One merchant's position in ``period`` (default: the open one)."""
    clearing = alliance.contracts.clearing
    cur = clearing.current_period()
    p = cur if period is None else _int(period, "period", low=1, high=cur)
    info = clearing.period(p)
    closed = info.closed_at != 0
    count = info.merchants if closed else alliance.contracts.registry.merchant_count()
    if not 1 <= merchant_id <= count:
        raise LedgerNotFoundError(f"merchant {merchant_id} has no position in period {p}")
    return _position(alliance, p, merchant_id, closed)


def _position(alliance: Alliance, p: int, mid: int, closed: bool) -> PositionView:
    clearing = alliance.contracts.clearing
    net, accepted = clearing.position_of(p, mid)
    paid, received = clearing.settlement_of(p, mid) if closed else (0, 0)
    outstanding = clearing.outstanding(p, mid) if closed else net
    return PositionView(mid, p, net, accepted, paid, received, outstanding)


# ---------------------------------------------------------------------- operator actions


def close_period(alliance: Alliance) -> PeriodView:
    """Close the open period on chain; give the closed period with every merchant's net."""
    clearing = alliance.contracts.clearing
    p = clearing.current_period()
    alliance.operator.transact(to=clearing.address, data=clearing.encode("closePeriod"))
    return period_view(alliance, p)


def settle(alliance: Alliance, *, period: int, page: int = CLAIM_PAGE) -> PeriodView:
    """Pay every creditor of a closed period what it can claim from escrow now (its net pro
    rata of what debtors paid, to its payout address), ``page`` creditors per transaction.
    Creditors with nothing to claim are skipped. The chain says why when nothing can be paid
    (``ClearingPeriodNotClosed``, ``ClearingNothingToClaim``: found by the gas estimate,
    before anything is sent)."""
    clearing = alliance.contracts.clearing
    p = _int(period, "period", low=1)
    info = clearing.period(p)
    ids = [m for m in range(1, info.merchants + 1) if clearing.claimable(p, m) > 0] or [1]
    for i in range(0, len(ids), page):
        alliance.operator.transact(to=clearing.address,
                                   data=clearing.encode("claim", p, ids[i:i + page]))
    return period_view(alliance, p)


def sweep_stray(alliance: Alliance, *, to: str) -> int:
    """Send the settlement tokens the clearing holds beyond escrow (sent with a plain
    transfer) to ``to``; give the amount. Escrowed tokens cannot be swept."""
    if not isinstance(to, str) or not is_hex_address(to):
        raise LedgerValidationError("to must be an address", field="to")
    clearing = alliance.contracts.clearing
    stray = alliance.contracts.settlement_token.balance_of(clearing.address) - clearing.escrowed()
    if stray <= 0:
        raise LedgerValidationError("the clearing holds no stray settlement tokens", field="to")
    alliance.operator.transact(to=clearing.address,
                               data=clearing.encode("sweep", to_checksum_address(to)))
    return stray


def confirm_for_suspended(alliance: Alliance, *, period: int, debtor: int, creditor: int,
                          amount: int) -> PositionView:
    """Record, as the operator, that ``debtor`` paid a suspended ``creditor`` off chain."""
    clearing = alliance.contracts.clearing
    alliance.operator.transact(to=clearing.address, data=clearing.encode(
        "confirmOffChainPaymentFor", _int(period, "period", low=1),
        _int(debtor, "debtor", low=1), _int(creditor, "creditor", low=1),
        _int(amount, "amount", low=1)))
    return position(alliance, merchant_id=creditor, period=period)


def set_caps(alliance: Alliance, *, merchant_id: int, liability_cap: int,
             foreign_cap: int) -> bool:
    """Set a merchant's liability cap and per-period foreign cap (settlement units; 0: none),
    through the timelock. True once in effect, False while pending."""
    reg = alliance.contracts.registry
    mid = _int(merchant_id, "merchant_id", low=1)
    return govern(alliance, kind="set_caps", target=reg.address, data=reg.encode(
        "setCaps", mid, _int(liability_cap, "liability_cap", high=2**112 - 1),
        _int(foreign_cap, "foreign_cap", high=2**112 - 1)),
        summary=f"caps of merchant {mid}: liability {liability_cap}, foreign {foreign_cap}",
        details={"merchant_id": mid}) is None


def set_acceptance(alliance: Alliance, *, acceptor: int, program_merchant: int,
                   accepted: bool) -> bool:
    """Whether ``acceptor`` takes ``program_merchant``'s points, through the timelock. True
    once in effect, False while pending."""
    if not isinstance(accepted, bool):
        raise LedgerValidationError("accepted must be true or false", field="accepted")
    reg = alliance.contracts.registry
    acc = _int(acceptor, "acceptor", low=1)
    prog = _int(program_merchant, "program_merchant", low=1)
    return govern(alliance, kind="set_acceptance", target=reg.address, data=reg.encode(
        "setAcceptance", acc, prog, accepted),
        summary=f"merchant {acc} {'accepts' if accepted else 'refuses'} the points of "
                f"merchant {prog}") is None


def mint_settlement_tokens(alliance: Alliance, *, merchant_id: int, amount: int) -> int:
    """Mint settlement tokens (the minter's key) to a merchant's account against cash
    received; give its new token balance."""
    account = alliance.contracts.registry.merchant(_int(merchant_id, "merchant_id", low=1)).account
    token = alliance.contracts.settlement_token
    alliance.minter.transact(to=token.address, data=token.encode(
        "mint", account, _int(amount, "amount", low=1)))
    return token.balance_of(account)


def operator_refund(alliance: Alliance, *, program_merchant: int, acceptor: int,
                    order_id: str, points: int) -> None:
    """Refund, as the operator, what a redemption of ``program_merchant``'s points took for
    ``acceptor``'s order ``order_id`` (for an acceptor suspended since)."""
    record = alliance.contracts.registry.merchant(_int(program_merchant, "program_merchant",
                                                       low=1))
    if record.program is None:
        raise LedgerNotFoundError(f"merchant {program_merchant} has no point program")
    program = alliance.contracts.program(record.program)
    alliance.operator.transact(to=program.address, data=program.encode(
        "refundRedemption", _int(acceptor, "acceptor", low=1), order_ref(order_id),
        _int(points, "points", low=1, high=2**24 - 1)))


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


# ---------------------------------------------------------------------- merchant requests


def request_deposit(alliance: Alliance, session: Session, *, merchant_id: int, period: int,
                    amount: int) -> OperationView:
    """Queue a debtor's escrow deposit of settlement tokens for a closed period."""
    merchant = merchant_repos.get_merchant(session, merchant_id)
    if merchant is None:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    payload = {"to": alliance.contracts.settlement_token.address,
               "period": _int(period, "period", low=1), "amount": _int(amount, "amount", low=1)}
    op = outbox_repos.enqueue_operation(session, merchant_id=merchant_id, kind="deposit",
                                 payload=payload, signer=merchant.account_address)
    return operation_view(op)


def request_confirm_payment(alliance: Alliance, session: Session, *, merchant_id: int,
                            period: int, debtor: int, amount: int) -> OperationView:
    """Queue a creditor's confirmation that ``debtor`` paid it ``amount`` off chain."""
    merchant = merchant_repos.get_merchant(session, merchant_id)
    if merchant is None:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    if debtor == merchant_id:
        raise LedgerValidationError("a merchant cannot pay itself", field="debtor")
    payload = {"to": alliance.contracts.clearing.address, "period": _int(period, "period", low=1),
               "debtor": _int(debtor, "debtor", low=1), "amount": _int(amount, "amount", low=1)}
    op = outbox_repos.enqueue_operation(session, merchant_id=merchant_id, kind="confirm_payment",
                                 payload=payload, signer=merchant.account_address)
    return operation_view(op)


def deposit_calldata(alliance: Alliance, payload: dict[str, Any]) -> tuple[str, bytes]:
    token = alliance.contracts.settlement_token
    data = token.encode("transferAndCall(address,uint256,bytes)",
                        alliance.contracts.clearing.address, int(payload["amount"]),
                        abi_encode(["uint256"], [int(payload["period"])]))
    return token.address, data


def confirm_payment_calldata(alliance: Alliance, payload: dict[str, Any]) -> tuple[str, bytes]:
    clearing = alliance.contracts.clearing
    return clearing.address, clearing.encode("confirmOffChainPayment", int(payload["period"]),
                                             int(payload["debtor"]), int(payload["amount"]))


# ---------------------------------------------------------------------- statements


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
