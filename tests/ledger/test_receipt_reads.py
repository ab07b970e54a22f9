"""The outbox reads receipts without their logs (``rpc_batch(..., drop_logs=True)``): the
logs are cut out of the node's answer before it is decoded. What is left must be what a full
decode gives, field for field, on real receipts of a real anvil (a 40-line batch issue: 80
logs), and on any answer shaped as a node writes one (hex strings, nested topic arrays)."""

from __future__ import annotations

import json

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.alliance import Alliance
from ledger.chain.gateway import without_logs
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import repos as outbox_repos
from ledger.points.service import IssueLine, request_issue_batch
from ledger.runtime import outbox_worker

_hex = st.binary(max_size=40).map(lambda b: "0x" + b.hex())
_log = st.fixed_dictionaries({
    "address": _hex, "topics": st.lists(_hex, max_size=4), "data": _hex,
    "blockNumber": _hex, "logIndex": _hex, "removed": st.booleans()})
_receipt = st.fixed_dictionaries({
    "status": st.sampled_from(["0x0", "0x1"]), "blockNumber": _hex,
    "transactionHash": _hex, "logs": st.lists(_log, max_size=6), "logsBloom": _hex,
    "gasUsed": _hex, "to": st.one_of(st.none(), _hex)})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), _receipt), max_size=5), st.booleans())
def test_cutting_the_logs_leaves_every_other_field_as_decoded(
        receipts: list[dict[str, object] | None], spaced: bool) -> None:
    answer = [{"jsonrpc": "2.0", "id": i, "result": r} for i, r in enumerate(receipts)]
    body = json.dumps(answer, separators=(", ", ": ") if spaced else (",", ":")).encode()
    got = json.loads(without_logs(body))
    for want, have in zip(answer, got, strict=True):
        result = want["result"]
        if result is None:
            assert have["result"] is None
            continue
        assert isinstance(result, dict)
        assert have["result"] == {**result, "logs": None}


def test_receipts_read_without_logs_equal_the_full_read_but_for_the_logs(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        request_issue_batch(alliance, s, merchant_id=mid, items=[
            IssueLine(points=5 + i, order_id=f"RR-{i}", member=Account.create().address)
            for i in range(40)])
    outbox_worker(alliance).drain()
    with alliance.store.read_session() as s:
        hashes = [h for h, _ in outbox_repos.confirmed_transactions(s, merchant_id=mid)]
    gw = alliance.gateway
    calls = [("eth_getTransactionReceipt", [h]) for h in [*hashes, "0x" + "00" * 32]]
    full = gw.rpc_batch(calls)
    lean = gw.rpc_batch(calls, drop_logs=True)
    assert full[-1] is None and lean[-1] is None  # an unknown transaction: no receipt
    assert any(len(r["logs"]) == 80 for r in full[:-1])  # the 40-line batch's
    for f, lean_one in zip(full[:-1], lean[:-1], strict=True):
        assert lean_one == {**f, "logs": None}
        parsed = gw.parse_receipt(lean_one, logs=False)
        assert (parsed["status"], parsed["blockNumber"], parsed["transactionHash"]) == \
            (int(f["status"], 16), int(f["blockNumber"], 16), f["transactionHash"])
