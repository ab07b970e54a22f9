"""One set of bounds: the API's schemas and the ledger's checks (both reading ledger.limits)
take and refuse exactly the same values, at every edge; bad input anywhere in the ledger is a
LedgerValidationError (never a bare ValueError); the one merchant lookup tells "unknown"
from "broken"."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from pydantic import TypeAdapter, ValidationError

from api.schemas import common, merchants, points
from ledger import limits
from ledger.alliance import Alliance
from ledger.chain import encoding
from ledger.chain.gateway import ChainGateway
from ledger.clearing import service as clearing
from ledger.contracts.compiler import Artifact
from ledger.errors import (
    LedgerError,
    LedgerIntegrityError,
    LedgerNotFoundError,
    LedgerValidationError,
)
from ledger.merchants import repos as merchant_repos
from ledger.merchants.service import AdmittedMerchant, program_of, require_merchant
from ledger.points.clients import IssueItem, PointProgramClient, Redemption
from ledger.settings import Settings
from ledger.store.db import Store, migrate

# (schema field type, ledger checker, lowest and highest value both must take)
INTEGER_BOUNDS: list[tuple[str, Any, Callable[[object], int], int, int]] = [
    ("points", common.Points, limits.points, 1, limits.MAX_POINTS),
    ("redeem points", common.RedeemPoints, limits.redeem_points, 1, limits.MAX_REDEEM_POINTS),
    ("merchant id", common.MerchantId, limits.merchant_id, 1, limits.MAX_ID),
    ("nonce", common.Nonce, limits.nonce, 0, limits.MAX_NONCE),
    ("release time", common.UnixTime, lambda v: limits.unix_time(v, "release_at"), 0,
     limits.MAX_UNIX_TIME),
    ("rate", merchants.Rate, limits.rate, 1, limits.MAX_RATE),
    ("amount", common.Amount, lambda v: limits.value(v, "amount", low=1), 1,
     limits.MAX_VALUE),
]


def _schema_takes(field_type: Any, value: object) -> bool:
    try:
        TypeAdapter(field_type).validate_python(value)
        return True
    except ValidationError:
        return False


def _ledger_takes(check: Callable[[object], object], value: object) -> bool:
    try:
        check(value)
        return True
    except LedgerValidationError:
        return False


@pytest.mark.parametrize(("name", "field_type", "check", "low", "high"), INTEGER_BOUNDS,
                         ids=[b[0] for b in INTEGER_BOUNDS])
def test_schema_and_ledger_take_the_same_integers_at_every_edge(
        name: str, field_type: Any, check: Callable[[object], int], low: int,
        high: int) -> None:
    for value in (low - 1, low, low + 1, high - 1, high, high + 1, True, False, 1.0, "1",
                  None):
        schema, ledger = _schema_takes(field_type, value), _ledger_takes(check, value)
        assert schema == ledger, (name, value, schema, ledger)
    assert _ledger_takes(check, low) and _ledger_takes(check, high)
    assert not _ledger_takes(check, high + 1) and not _ledger_takes(check, True)


ORDER_IDS = ["POS-1", "a", "A" * 64, "A" * 65, "", "with space", "ok._:/#-9", "é", "x\n",
             "POS-1\n"]
SIGNATURES = ["0x" + "ab" * 65, "0x" + "AB" * 2048, "0x" + "ab" * 2049, "0x" + "ab" * 64,
              "0x" + "a" * 131, "ab" * 65, "0x" + "zz" * 65, "0x" + "ab" * 65 + "\n"]


MEMBER_IDS = ["member-0001", "m", "x" * 128, "x" * 129, "", "tab\there", "nl\n", "del\x7f",
              "c1\x85", "名前", "with space"]


@pytest.mark.parametrize(("field_type", "check", "values"), [
    (common.OrderId, limits.order_id, ORDER_IDS),
    (common.Signature, limits.signature, SIGNATURES),
    (common.MemberId, limits.member_id, MEMBER_IDS),
], ids=["order id", "signature", "member id"])
def test_schema_and_ledger_take_the_same_patterns(field_type: Any,
                                                  check: Callable[[object], str],
                                                  values: list[str]) -> None:
    for value in values:
        assert _schema_takes(field_type, value) == _ledger_takes(check, value), value


def test_a_blank_member_id_is_refused_by_the_ledger() -> None:
    """The one place the two differ: the ledger also refuses a member id of spaces only."""
    with pytest.raises(LedgerValidationError):
        limits.member_id("   ")


def test_batch_bodies_and_the_ledgers_default_batch_bound_agree() -> None:
    line = {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "points": 1,
            "order_id": "B-1"}
    full = {"items": [line] * limits.MAX_BATCH_ITEMS}
    assert points.IssueBatchRequest.model_validate(full)
    with pytest.raises(ValidationError):
        points.IssueBatchRequest.model_validate({"items": [line] * (limits.MAX_BATCH_ITEMS + 1)})
    assert Settings().max_batch_items == limits.MAX_BATCH_ITEMS


def test_every_checker_error_is_a_validation_error_naming_its_field() -> None:
    with pytest.raises(LedgerValidationError) as caught:
        limits.points(0, "min_out")
    assert caught.value.details == {"field": "min_out"}
    with pytest.raises(LedgerValidationError) as caught:
        limits.address("0x" + "0" * 40)
    assert caught.value.details == {"field": "member"}


def test_the_fast_encoders_refuse_a_short_order_ref_as_a_validation_error() -> None:
    member = to_checksum_address(os.urandom(20))
    with pytest.raises(LedgerValidationError) as caught:
        encoding.encode_issue_batch(b"\0" * 4, [IssueItem(member, 1, b"\1" * 31)])
    assert caught.value.details == {"field": "order_ref"}
    with pytest.raises(LedgerValidationError):
        encoding.encode_redeem_batch(b"\0" * 4, [(Redemption(member, 1, 1, b"\1" * 33, 0, 1),
                                                  b"\2" * 65)])


def test_free_nonce_with_no_free_word_is_a_ledger_error(
        gateway: ChainGateway, artifacts: dict[str, Artifact]) -> None:
    client = PointProgramClient(gateway, artifacts["PointProgram"].abi,
                                to_checksum_address(os.urandom(20)))
    with pytest.raises(LedgerNotFoundError):
        client.free_nonce(to_checksum_address(os.urandom(20)), max_words=0)


def test_require_merchant_tells_unknown_from_broken(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate(url)
    store = Store(url)
    key = b"an encrypted key"
    with store.session() as s:
        merchant_repos.add_merchant(s, merchant_id=1, name="Whole", account="0x" + "1" * 40,
                                    program="0x" + "2" * 40, signing_key=key)
        merchant_repos.add_merchant(s, merchant_id=2, name="Broken", account="0x" + "3" * 40,
                                    program=None, signing_key=key)
    with store.read_session() as s:
        assert program_of(require_merchant(s, 1, program=True)) == "0x" + "2" * 40
        with pytest.raises(LedgerNotFoundError):
            require_merchant(s, 3)
        assert require_merchant(s, 2).name == "Broken"  # a lookup that needs no program
        with pytest.raises(LedgerIntegrityError) as caught:
            require_merchant(s, 2, program=True)
        assert not isinstance(caught.value, LookupError)  # never mistaken for "not found"
        assert isinstance(caught.value, LedgerError)
    store.dispose()


def test_an_operator_refund_with_a_malformed_order_id_is_refused_before_anything_is_sent(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant
        ) -> None:
    def sent() -> int:
        return int(alliance.gateway.rpc("eth_getTransactionCount",
                                        [alliance.operator.address, "latest"]), 16)

    before = sent()
    with pytest.raises(LedgerValidationError) as caught:
        clearing.operator_refund(alliance, program_merchant=store_merchant.merchant_id,
                                 acceptor=cafe_merchant.merchant_id, order_id="CAFE 1\n",
                                 points=1)
    assert caught.value.details == {"field": "order_id"}
    assert sent() == before
