"""Each audit rule on made-up events: every invariant the chain's contracts already enforce
must still be caught by the audit if a log ever said otherwise (a contract bug, a node that
lies), since that is what an auditor relies on."""

from __future__ import annotations

from typing import Any

from ledger.audit.clearing import ClearingRule
from ledger.audit.governance import GovernanceRule
from ledger.audit.points import PointsRule
from ledger.audit.source import ZERO_ADDRESS, Event, Kind

PROGRAM_A, PROGRAM_B = "0x" + "a1" * 20, "0x" + "b2" * 20
CLEARING = "0x" + "c3" * 20
MEMBER = "0x" + "0d" * 20
REF = "0x" + "01" * 32
_log = iter(range(1, 10**6))


def ev(name: str, kind: str, address: str, /, block: int = 10, tx: str = "0x" + "77" * 32,
       **args: Any) -> Event:
    return Event(name, kind, address, args, block, next(_log), tx)


def rules() -> tuple[GovernanceRule, PointsRule, ClearingRule]:
    gov = GovernanceRule()
    for mid, rate in ((1, 10), (2, 25)):
        gov.apply(ev("MerchantAdmitted", Kind.REGISTRY, "0x" + "99" * 20, block=1,
                     merchantId=mid, account="0x" + f"{mid:02x}" * 20, recordHash=REF))
        gov.apply(ev("RateSet", Kind.REGISTRY, "0x" + "99" * 20, block=1, merchantId=mid,
                     rate=rate))
    merchant_of = {PROGRAM_A: 1, PROGRAM_B: 2}
    return gov, PointsRule(gov, merchant_of), ClearingRule(gov, merchant_of, "0x" + "99" * 20)


def codes(rule: PointsRule | ClearingRule) -> list[str]:
    return [f.code for f in rule.findings]


def issue(points: PointsRule, ref: str = REF, amount: int = 100) -> None:
    points.apply(ev("PointsIssued", Kind.PROGRAM, PROGRAM_A, member=MEMBER, orderRef=ref,
                    amount=amount, earnPeriod=0, releaseDay=0))


def test_an_order_reference_minted_twice_is_a_violation() -> None:
    _, points, _ = rules()
    issue(points)
    issue(points)
    assert codes(points) == ["OrderRefMintedTwice"]


def test_a_reversal_beyond_what_the_order_has_left_is_a_violation() -> None:
    _, points, _ = rules()
    issue(points, amount=100)
    points.apply(ev("PointsReversed", Kind.PROGRAM, PROGRAM_A, member=MEMBER, orderRef=REF,
                    amount=60, burned=60))
    assert codes(points) == []
    points.apply(ev("PointsReversed", Kind.PROGRAM, PROGRAM_A, member=MEMBER, orderRef=REF,
                    amount=41, burned=41))
    assert codes(points) == ["ReversalExceedsIssued"]


def test_a_refund_beyond_its_redemption_or_of_a_conversion_is_a_violation() -> None:
    _, points, _ = rules()
    points.apply(ev("PointsRedeemed", Kind.PROGRAM, PROGRAM_A, member=MEMBER, merchantId=2,
                    orderRef=REF, amount=30, nonce=0))
    points.apply(ev("RedemptionRefunded", Kind.PROGRAM, PROGRAM_A, member=MEMBER,
                    merchantId=2, orderRef=REF, amount=31))
    conv = "0x" + "02" * 32
    points.apply(ev("PointsConverted", Kind.PROGRAM, PROGRAM_A, member=MEMBER, toMerchantId=2,
                    orderRef=conv, spent=10, out=4, nonce=1))
    points.apply(ev("RedemptionRefunded", Kind.PROGRAM, PROGRAM_A, member=MEMBER,
                    merchantId=2, orderRef=conv, amount=1))
    assert codes(points) == ["RefundExceedsRedemption", "RefundExceedsRedemption"]


def test_a_foreign_redemption_not_cleared_in_its_transaction_is_a_violation() -> None:
    _, _, clearing = rules()
    clearing.apply(ev("PointsRedeemed", Kind.PROGRAM, PROGRAM_A, member=MEMBER, merchantId=2,
                      orderRef=REF, amount=30, nonce=0))

    class NoChain:
        class addresses:  # noqa: N801 - the shape Checks has
            clearing = CLEARING

    found = clearing._match_acts(NoChain())  # type: ignore[arg-type]
    assert [f.code for f in found] == ["ActNotCleared"]


def test_cleared_value_and_rate_and_conversions_are_checked() -> None:
    _, _, clearing = rules()
    # A redemption of merchant 1's points worth 30 x 10, cleared as 301: value created.
    clearing.apply(ev("Cleared", Kind.CLEARING, CLEARING, period=1, debtor=1, creditor=2,
                      kind=1, points=30, rate=10, value=301))
    # At a rate the registry never set.
    clearing.apply(ev("Cleared", Kind.CLEARING, CLEARING, period=1, debtor=1, creditor=2,
                      kind=1, points=30, rate=11, value=330))
    # A conversion worth more than the points it burnt (10 x 10 = 100 < 125).
    clearing.apply(ev("Cleared", Kind.CLEARING, CLEARING, period=1, debtor=1, creditor=2,
                      kind=2, points=10, rate=10, value=125))
    assert codes(clearing) == ["ClearedValueNotPointsTimesRate", "ClearedAtWrongRate",
                               "ConversionCreatedValue"]


def test_a_close_whose_recorded_nets_differ_from_the_positions_is_a_violation() -> None:
    _, _, clearing = rules()
    clearing.apply(ev("Cleared", Kind.CLEARING, CLEARING, period=1, debtor=1, creditor=2,
                      kind=1, points=30, rate=10, value=300))
    clearing.apply(ev("NetRecorded", Kind.CLEARING, CLEARING, period=1, merchantId=1,
                      net=-300))
    clearing.apply(ev("NetRecorded", Kind.CLEARING, CLEARING, period=1, merchantId=2,
                      net=250))
    clearing.apply(ev("PeriodClosed", Kind.CLEARING, CLEARING, period=1, merchants=2,
                      totalOwed=250))
    assert codes(clearing) == ["RecordedNetsMismatch", "TotalOwedMismatch"]


def test_settling_more_than_the_nets_is_a_violation() -> None:
    _, _, clearing = rules()
    clearing.apply(ev("Cleared", Kind.CLEARING, CLEARING, period=1, debtor=1, creditor=2,
                      kind=1, points=30, rate=10, value=300))
    clearing.apply(ev("NetRecorded", Kind.CLEARING, CLEARING, period=1, merchantId=1,
                      net=-300))
    clearing.apply(ev("NetRecorded", Kind.CLEARING, CLEARING, period=1, merchantId=2,
                      net=300))
    clearing.apply(ev("PeriodClosed", Kind.CLEARING, CLEARING, period=1, merchants=2,
                      totalOwed=300))
    clearing.apply(ev("Deposited", Kind.CLEARING, CLEARING, period=1, merchantId=1,
                      amount=300))
    clearing.apply(ev("PaidOut", Kind.CLEARING, CLEARING, period=1, merchantId=2,
                      payout="0x" + "55" * 20, amount=301))
    clearing.apply(ev("Deposited", Kind.CLEARING, CLEARING, period=1, merchantId=2,
                      amount=1))
    assert codes(clearing) == ["SettlementExceedsNet", "EscrowOverdrawn",
                               "SettlementExceedsNet"]


def test_a_balance_going_negative_and_supply_are_rebuilt_from_transfers() -> None:
    _, points, _ = rules()
    points.apply(ev("Transfer", Kind.PROGRAM, PROGRAM_A, **{"from": ZERO_ADDRESS,
                                                            "to": MEMBER, "value": 5}))
    points.apply(ev("Transfer", Kind.PROGRAM, PROGRAM_A, **{"from": MEMBER,
                                                            "to": ZERO_ADDRESS, "value": 7}))
    book = points.books[PROGRAM_A]
    assert book.supply == -2 and book.balances[MEMBER] == -2


def test_writes_must_come_from_the_merchant_that_signs_for_them() -> None:
    _, points, _ = rules()
    issue_tx, redeem_tx, stray_tx = ("0x" + c * 64 for c in "abc")
    points.apply(ev("PointsIssued", Kind.PROGRAM, PROGRAM_A, tx=issue_tx, member=MEMBER,
                    orderRef=REF, amount=5, earnPeriod=0, releaseDay=0))
    points.apply(ev("PointsRedeemed", Kind.PROGRAM, PROGRAM_A, tx=redeem_tx, member=MEMBER,
                    merchantId=2, orderRef=REF, amount=1, nonce=0))
    points.apply(ev("PointsIssued", Kind.PROGRAM, PROGRAM_A, tx=stray_tx, member=MEMBER,
                    orderRef="0x" + "02" * 32, amount=5, earnPeriod=0, releaseDay=0))

    class Senders:
        class addresses:  # noqa: N801 - the shape Checks has
            registry = "0x" + "99" * 20

        @staticmethod
        def senders(txs: list[str]) -> dict[str, str]:
            # Merchant 1 issued; merchant 2 relayed the redemption; someone else issued.
            return {issue_tx: "0x" + "01" * 20, redeem_tx: "0x" + "02" * 20,
                    stray_tx: "0x" + "66" * 20}

    found = points._check_senders(Senders())  # type: ignore[arg-type]
    assert [(f.code, f.tx) for f in found] == [("WriteByNonMerchant", stray_tx)]


def test_an_account_moved_twice_is_a_violation() -> None:
    _, points, _ = rules()
    issue(points)
    wallet, other = "0x" + "0e" * 20, "0x" + "0f" * 20
    points.apply(ev("PointsMoved", Kind.PROGRAM, PROGRAM_A, **{"from": MEMBER, "to": wallet,
                                                                "amount": 100}))
    assert codes(points) == []
    points.apply(ev("PointsMoved", Kind.PROGRAM, PROGRAM_A, **{"from": MEMBER, "to": other,
                                                                "amount": 0}))
    assert codes(points) == ["AccountMovedTwice"]
