"""Cross-merchant points through the ledger layer (outbox, sender, chain, store together):
foreign redemptions in batches, conversion, refunds, close, escrow settlement, statements."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger.alliance import Alliance
from ledger.clearing import service as clearing
from ledger.clearing import statements
from ledger.clearing.service import KIND_NAMES
from ledger.errors import ContractRevertError, LedgerNotFoundError, LedgerSignatureError
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.outbox.views import get_operation
from ledger.points.reads import history
from ledger.points.service import (
    SignedRedemption,
    request_convert,
    request_issue,
    request_redeem,
    request_redeem_batch,
    request_refund_redemption,
)
from ledger.runtime import indexer, outbox_worker

from .helpers import sign_conversion, sign_redemption


@pytest.fixture
def trio(alliance: Alliance) -> list[AdmittedMerchant]:
    """A department store (10 fen/point), a cinema (25) and a cafe (4)."""
    return [admit_merchant(alliance, name=n, symbol=s, rate=r)
            for n, s, r in [("Grand Plaza", "GP", 10), ("Starlight Cinema", "STAR", 25),
                            ("Corner Cafe", "CAFE", 4)]]


def _fund(alliance: Alliance, m: AdmittedMerchant, members: list[LocalAccount],
          points: int) -> None:
    with alliance.store.session() as s:
        for i, mem in enumerate(members):
            request_issue(alliance, s, merchant_id=m.merchant_id, member=mem.address,
                          points=points, order_id=f"fund-{m.merchant_id}-{i}")
    outbox_worker(alliance).drain()


def _signed(alliance: Alliance, member: LocalAccount, issuer: AdmittedMerchant,
            acceptor: AdmittedMerchant, points: int, order_id: str, nonce: int,
            *, tamper: bool = False) -> SignedRedemption:
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 3600
    sig = sign_redemption(member, program=issuer.program, chain_id=alliance.gateway.chain_id,
                          registry=alliance.contracts.registry.address,
                          amount=points + (1 if tamper else 0), merchant_id=acceptor.merchant_id,
                          order_id=order_id, nonce=nonce, deadline=deadline)
    return SignedRedemption(member.address, points, order_id, nonce, deadline, sig,
                            issuer.merchant_id)


def _acts_from_logs(alliance: Alliance, period: int) -> list[tuple[Any, ...]]:
    """The period's acts rebuilt from the Clearing's logs and their transactions' receipts,
    as statements were built before they read the indexed read model: the reference the
    read model must match line for line (so statements and their digests are unchanged)."""
    gw, contracts = alliance.gateway, alliance.contracts
    clearing_client = contracts.clearing
    topic = "0x" + gw.event_topic(clearing_client.abi, "Cleared").hex()
    logs = gw.get_logs(address=clearing_client.address, from_block=contracts.deployment.block,
                       to_block=gw.block_number(),
                       topics=[topic, "0x" + period.to_bytes(32, "big").hex()])
    out = []
    for _, args, raw in clearing_client.decode_logs(logs):
        debtor, creditor = int(args["debtor"]), int(args["creditor"])
        value, rate = int(args["value"]), int(args["rate"])
        kind = KIND_NAMES[int(args["kind"])]
        tx = "0x" + bytes(raw["transactionHash"]).hex()
        receipt = gw.receipt(tx)
        assert receipt is not None
        points_of = creditor if kind == "refund" else debtor
        acceptor = debtor if kind == "refund" else creditor
        program = contracts.program(str(contracts.registry.merchant(points_of).program))
        lines = []
        for name, ev, lg in program.decode_logs(
                [lg for lg in receipt["logs"]
                 if str(lg["address"]).lower() == program.address.lower()]):
            wanted = {"redemption": ("PointsRedeemed", "merchantId"),
                      "refund": ("RedemptionRefunded", "merchantId"),
                      "conversion": ("PointsConverted", "toMerchantId")}[kind]
            if name != wanted[0] or int(ev[wanted[1]]) != acceptor:
                continue
            pts = int(ev["spent"]) if kind == "conversion" else int(ev["amount"])
            val = value if kind == "conversion" else pts * rate
            lines.append({"kind": kind, "tx_hash": tx, "block_number": int(lg["blockNumber"]),
                          "log_index": int(lg["logIndex"]), "points_of": points_of,
                          "accepted_by": acceptor, "order_ref": "0x" + bytes(ev["orderRef"]).hex(),
                          "points": pts, "rate": rate, "value": val})
        out.append((kind, debtor, creditor, value, lines))
    return out


def _indexed_acts(alliance: Alliance, period: int) -> list[tuple[Any, ...]]:
    return [(a.kind, a.debtor, a.creditor, a.value, a.lines)
            for a in statements._period_acts(alliance, period)]


def _net(alliance: Alliance, m: AdmittedMerchant, period: int | None = None) -> int:
    return clearing.position(alliance, merchant_id=m.merchant_id, period=period).net


def test_a_batch_of_foreign_redemptions_lands_as_one_transaction_per_program(
        alliance: Alliance, trio: list[AdmittedMerchant]) -> None:
    gp, star, cafe = trio
    members = [Account.create() for _ in range(4)]
    _fund(alliance, gp, members, 100)
    _fund(alliance, star, members, 50)
    items = [_signed(alliance, m, gp, cafe, 10 + i, f"cafe-{i}", 0)
             for i, m in enumerate(members)]
    items += [_signed(alliance, m, star, cafe, 5, f"cafe-s{i}", 0) for i, m in enumerate(members)]
    with alliance.store.session() as s:
        ops = request_redeem_batch(alliance, s, merchant_id=cafe.merchant_id, items=items)
    assert [op.items for op in ops] == [4, 4]
    outbox_worker(alliance).drain()
    done = [get_operation(alliance, operation_id=op.id, merchant_id=cafe.merchant_id)
            for op in ops]
    assert [d.status for d in done] == ["confirmed", "confirmed"]
    assert done[0].tx_hash != done[1].tx_hash
    assert _net(alliance, gp) == -(10 + 11 + 12 + 13) * 10
    assert _net(alliance, star) == -4 * 5 * 25
    assert _net(alliance, cafe) == 460 + 500
    view = clearing.period_view(alliance)
    assert sum(p.net for p in view.positions) == 0


def test_one_bad_signature_fails_alone_and_clears_nothing_for_it(
        alliance: Alliance, trio: list[AdmittedMerchant]) -> None:
    gp, _, cafe = trio
    members = [Account.create() for _ in range(3)]
    _fund(alliance, gp, members, 100)
    # A tampered signature no longer reaches the chain: the service recovers the signer
    # before queueing (issue 8) and refuses it at once.
    tampered = _signed(alliance, members[1], gp, cafe, 20, "bad", 0, tamper=True)
    with pytest.raises(LedgerSignatureError), alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=cafe.merchant_id, member=tampered.member,
                       points=20, order_id="bad", nonce=0, deadline=tampered.deadline,
                       signature=tampered.signature, program_merchant_id=gp.merchant_id)
    # A line only the chain can refuse (more points than the member holds) fails alone.
    with alliance.store.session() as s:
        ops = [request_redeem(alliance, s, merchant_id=cafe.merchant_id, member=r.member,
                              points=r.points, order_id=r.order_id, nonce=r.nonce,
                              deadline=r.deadline, signature=r.signature,
                              program_merchant_id=gp.merchant_id)
               for r in [_signed(alliance, members[0], gp, cafe, 20, "ok-1", 0),
                         _signed(alliance, members[1], gp, cafe, 120, "bad", 0),
                         _signed(alliance, members[2], gp, cafe, 20, "ok-2", 0)]]
    outbox_worker(alliance).drain()
    status = [get_operation(alliance, operation_id=op.id, merchant_id=cafe.merchant_id)
              for op in ops]
    assert [st.status for st in status] == ["confirmed", "failed", "confirmed"]
    assert status[1].error_code == "PointsInsufficientBalance"
    assert _net(alliance, cafe) == 2 * 20 * 10


def test_convert_and_refund_through_the_outbox(alliance: Alliance,
                                               trio: list[AdmittedMerchant]) -> None:
    gp, star, _ = trio
    member = Account.create()
    _fund(alliance, gp, [member], 100)
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 3600
    sig = sign_conversion(member, program=gp.program, chain_id=alliance.gateway.chain_id,
                          registry=alliance.contracts.registry.address,
                          amount=26, to_merchant_id=star.merchant_id, min_out=10,
                          order_id="conv-1", nonce=0, deadline=deadline)
    spend = _signed(alliance, member, gp, star, 30, "star-ticket", 1)
    with alliance.store.session() as s:
        conv = request_convert(alliance, s, merchant_id=star.merchant_id, member=member.address,
                               from_merchant_id=gp.merchant_id, points=26, min_out=10,
                               order_id="conv-1", nonce=0, deadline=deadline, signature=sig)
        red = request_redeem(alliance, s, merchant_id=star.merchant_id, member=member.address,
                             points=30, order_id="star-ticket", nonce=1,
                             deadline=spend.deadline, signature=spend.signature,
                             program_merchant_id=gp.merchant_id)
    outbox_worker(alliance).drain()
    for op in (conv, red):
        assert get_operation(alliance, operation_id=op.id,
                             merchant_id=star.merchant_id).status == "confirmed"
    # 26 points at 10 fen = 260 fen buy 10 points at 25 fen (250); 25 points pay, 1 stays.
    gp_prog = alliance.contracts.program(gp.program)
    assert gp_prog.balance_of(member.address) == 100 - 25 - 30
    assert alliance.contracts.program(star.program).balance_of(member.address) == 10
    assert _net(alliance, star) == 250 + 300
    with alliance.store.session() as s:
        ref = request_refund_redemption(alliance, s, merchant_id=star.merchant_id,
                                        order_id="star-ticket", points=30,
                                        program_merchant_id=gp.merchant_id)
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=ref.id,
                         merchant_id=star.merchant_id).status == "confirmed"
    assert gp_prog.balance_of(member.address) == 75 and _net(alliance, star) == 250
    # The member's history shows every step, each with the other merchant involved.
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member.address)
    seen = [(e["kind"], e["merchant_id"], e["amount"]) for e in reversed(events)]
    assert seen == [("issued", gp.merchant_id, 100), ("converted_out", star.merchant_id, 25),
                    ("converted_in", gp.merchant_id, 10), ("redeemed", star.merchant_id, 30),
                    ("refunded", star.merchant_id, 30)]
    # The clearing read model holds the conversion, the redemption and its refund exactly as
    # the chain's logs and receipts give them.
    period = alliance.contracts.clearing.current_period()
    acts = _indexed_acts(alliance, period)
    assert [a[0] for a in acts] == ["conversion", "redemption", "refund"]
    assert acts == _acts_from_logs(alliance, period)


def test_close_deposit_settle_and_statements_agree_with_the_chain(
        alliance: Alliance, trio: list[AdmittedMerchant]) -> None:
    gp, star, cafe = trio
    members = [Account.create() for _ in range(2)]
    _fund(alliance, gp, members, 100)
    _fund(alliance, cafe, members, 100)
    with alliance.store.session() as s:
        request_redeem_batch(alliance, s, merchant_id=star.merchant_id, items=[
            _signed(alliance, members[0], gp, star, 40, "t-1", 0),
            _signed(alliance, members[1], cafe, star, 50, "t-2", 0)])
    # Nonces are sequential per member and program: the member signs nonce 1 after 0 landed.
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_redeem_batch(alliance, s, merchant_id=gp.merchant_id, items=[
            _signed(alliance, members[1], cafe, gp, 25, "g-1", 1)])
    outbox_worker(alliance).drain()
    closed = clearing.close_period(alliance)
    nets = {p.merchant_id: p.net for p in closed.positions}
    assert nets == {gp.merchant_id: -400 + 100, star.merchant_id: 400 + 200,
                    cafe.merchant_id: -200 - 100}
    assert closed.total_owed == 600 and closed.closed_at

    indexer(alliance).catch_up()
    st = statements.statement(alliance, period=closed.period, merchant_id=star.merchant_id)
    assert _indexed_acts(alliance, closed.period) == _acts_from_logs(alliance, closed.period)
    assert st.as_of_block >= alliance.gateway.block_number() - 1  # caught up past the close
    doc = st.document
    assert doc["totals"] == {"receivable": 600, "payable": 0, "net": 600}
    assert {c["merchant_id"]: c["net"] for c in doc["counterparties"]} == {
        gp.merchant_id: 400, cafe.merchant_id: 200}
    assert sorted(ln["value"] for ln in doc["lines"]) == [200, 400]
    assert all(ln["tx_hash"].startswith("0x") for ln in doc["lines"])
    assert st.hash == "0x" + keccak(json.dumps(doc, sort_keys=True,
                                               separators=(",", ":")).encode()).hex()
    rows = list(csv.reader(io.StringIO(st.to_csv())))
    assert rows[1][-1] == st.hash and rows[1][6] == "600"
    gp_st = statements.statement(alliance, period=closed.period, merchant_id=gp.merchant_id)
    assert gp_st.document["totals"] == {"receivable": 100, "payable": 400, "net": -300}

    anchored = statements.anchor_statements(alliance, period=closed.period)
    assert all(a.matches_anchor for a in anchored)
    again = statements.statement(alliance, period=closed.period, merchant_id=star.merchant_id)
    assert again.anchored_hash == st.hash

    clearing.mint_settlement_tokens(alliance, merchant_id=gp.merchant_id, amount=300)
    clearing.mint_settlement_tokens(alliance, merchant_id=cafe.merchant_id, amount=100)
    with alliance.store.session() as s:
        d1 = clearing.request_deposit(alliance, s, merchant_id=gp.merchant_id,
                                      period=closed.period, amount=300)
        d2 = clearing.request_deposit(alliance, s, merchant_id=cafe.merchant_id,
                                      period=closed.period, amount=100)
    outbox_worker(alliance).drain()
    for op in (d1, d2):
        assert get_operation(alliance, operation_id=op.id, merchant_id=None).status == "confirmed"
    settled = clearing.settle(alliance, period=closed.period)
    token = alliance.contracts.settlement_token
    # Paid at the payout address, never to the relaying key.
    assert token.balance_of(star.payout) == 400 and token.balance_of(star.account) == 0
    by_id = {p.merchant_id: p for p in settled.positions}
    assert by_id[star.merchant_id].outstanding == 200
    assert by_id[cafe.merchant_id].outstanding == -200
    with alliance.store.session() as s:
        c = clearing.request_confirm_payment(alliance, s, merchant_id=star.merchant_id,
                                             period=closed.period, debtor=cafe.merchant_id,
                                             amount=200)
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=c.id, merchant_id=None).status == "confirmed"
    final = clearing.period_view(alliance, closed.period)
    assert all(p.outstanding == 0 for p in final.positions)
    with pytest.raises(ContractRevertError) as info:
        clearing.settle(alliance, period=closed.period)
    assert info.value.name == "ClearingNothingToClaim"


def test_an_overpaying_deposit_fails_and_moves_no_tokens(alliance: Alliance,
                                                         trio: list[AdmittedMerchant]) -> None:
    gp, star, _ = trio
    member = Account.create()
    _fund(alliance, gp, [member], 10)
    with alliance.store.session() as s:
        request_redeem_batch(alliance, s, merchant_id=star.merchant_id,
                             items=[_signed(alliance, member, gp, star, 10, "x", 0)])
    outbox_worker(alliance).drain()
    p = clearing.close_period(alliance).period
    clearing.mint_settlement_tokens(alliance, merchant_id=gp.merchant_id, amount=1_000)
    with alliance.store.session() as s:
        op = clearing.request_deposit(alliance, s, merchant_id=gp.merchant_id, period=p,
                                      amount=101)
    outbox_worker(alliance).drain()
    failed = get_operation(alliance, operation_id=op.id, merchant_id=gp.merchant_id)
    assert failed.status == "failed" and failed.error_code == "ClearingExceedsOutstanding"
    assert alliance.contracts.settlement_token.balance_of(gp.account) == 1_000


def test_redeeming_points_of_an_unknown_program_is_refused_before_the_outbox(
        alliance: Alliance, trio: list[AdmittedMerchant]) -> None:
    _, _, cafe = trio
    member = Account.create()
    with alliance.store.session() as s, pytest.raises(LedgerNotFoundError):
        request_redeem(alliance, s, merchant_id=cafe.merchant_id, member=member.address,
                       points=1, order_id="o", nonce=0, deadline=2**31,
                       signature="0x" + "11" * 65, program_merchant_id=99)
