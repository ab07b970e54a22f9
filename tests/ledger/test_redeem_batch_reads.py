"""A batch of signed redemptions reads what its checks need from the chain (each member's
code, each nonce's bitmap word) in one JSON-RPC batch, not two round trips a line (a batch of
200 asked the node 400 questions one by one, the most of a redeem-batch request's time), and
the checks those answers feed are as strict as when each was read alone."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.alliance import Alliance
from ledger.errors import LedgerSignatureError
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import repos as outbox_repos
from ledger.points.kinds import REDEEM_BATCH
from ledger.points.service import SignedRedemption, request_redeem_batch

from .helpers import sign_redemption


def _line(alliance: Alliance, program_merchant: AdmittedMerchant, acceptor: int, order_id: str,
          nonce: int, deadline: int, signer: LocalAccount | None = None) -> SignedRedemption:
    member = Account.create()
    sig = sign_redemption(signer or member, program=program_merchant.program,
                          registry=alliance.contracts.deployment.registry,
                          chain_id=alliance.gateway.chain_id, amount=5, merchant_id=acceptor,
                          order_id=order_id, nonce=nonce, deadline=deadline)
    return SignedRedemption(member.address, 5, order_id, nonce, deadline, sig,
                            program_merchant.merchant_id)


def test_a_batch_of_redemptions_reads_the_chain_in_a_few_round_trips_whatever_its_size(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 600
    cafe = cafe_merchant.merchant_id
    items = [_line(alliance, store_merchant, cafe, f"RT-{i}", i % 3, deadline)
             for i in range(40)]

    def trips() -> int:  # the checks' batch goes through the gateway's lean client, counted
        return alliance.gateway.round_trips

    before = trips()
    with alliance.store.session() as s:
        ops = request_redeem_batch(alliance, s, merchant_id=cafe, items=items)
    asked = trips() - before
    assert len(ops) == 1 and ops[0].status == "queued"
    # The chain's time, every member's code and every nonce word in one batch (81 round trips
    # one by one, then 2: the time read apart).
    assert asked == 1, asked


def test_a_batch_reads_no_members_code_when_their_signatures_recover_to_them(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant, monkeypatch: pytest.MonkeyPatch) -> None:
    """The program recovers a signature first and takes it if it recovers to the member,
    whatever the member's code (``SignedActions._requireSignedBy``): so do the checks, which
    read a member's code only for a signature that does not (half of a 200-line batch's reads
    were the 200 members' code). The node still answers every read (the batch is recorded on
    its way, not answered here)."""
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 600
    cafe = cafe_merchant.merchant_id
    items = [_line(alliance, store_merchant, cafe, f"NC-{i}", i, deadline) for i in range(20)]
    reads = alliance.gateway.reads
    asked: list[str] = []
    real_batch, real_call = reads.batch, reads.call

    def batch(calls: Any, **kwargs: Any) -> Any:
        asked.extend(method for method, _ in calls)
        return real_batch(calls, **kwargs)

    def call(method: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(method)
        return real_call(method, *args, **kwargs)

    real_code = alliance.gateway.code

    def code(address: str) -> bytes:
        asked.append("eth_getCode")
        return real_code(address)

    monkeypatch.setattr(reads, "batch", batch)
    monkeypatch.setattr(reads, "call", call)
    monkeypatch.setattr(alliance.gateway, "code", code)
    trips = alliance.gateway.round_trips
    with alliance.store.session() as s:
        ops = request_redeem_batch(alliance, s, merchant_id=cafe, items=items)
    assert [op.status for op in ops] == ["queued"]
    assert "eth_getCode" not in asked, asked
    # The chain's time and each member's nonce word (read from the program's storage).
    assert sorted(set(asked)) == ["eth_getBlockByNumber", "eth_getStorageAt"], asked
    assert asked.count("eth_getStorageAt") == 20 and alliance.gateway.round_trips == trips + 1


def test_a_bad_signature_or_a_used_nonce_in_a_batch_is_still_refused_naming_its_line(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 600
    cafe = cafe_merchant.merchant_id
    good = [_line(alliance, store_merchant, cafe, f"BS-{i}", 0, deadline) for i in range(5)]
    forged = _line(alliance, store_merchant, cafe, "BS-X", 0, deadline, signer=Account.create())
    with alliance.store.read_session() as s:
        count = outbox_repos.count_operations(s)
    with pytest.raises(LedgerSignatureError) as exc, alliance.store.session() as s:
        request_redeem_batch(alliance, s, merchant_id=cafe, items=[*good[:3], forged, *good[3:]])
    assert exc.value.code == "signature-mismatch" and exc.value.details["index"] == 3
    # A contract wallet's signature is the chain's to judge: queued with a garbage signature,
    # next to EOAs whose signatures were checked from the same batch of reads.
    wallet = Account.create().address
    alliance.gateway.rpc("anvil_setCode", [wallet, "0x00"])
    contract_line = SignedRedemption(wallet, 5, "BS-W", 4, deadline, "0x" + "ab" * 70,
                                     store_merchant.merchant_id)
    with alliance.store.session() as s:
        ops = request_redeem_batch(alliance, s, merchant_id=cafe, items=[*good, contract_line])
    assert [op.status for op in ops] == ["queued"]
    with alliance.store.read_session() as s:
        assert outbox_repos.count_operations(s) == count + 1


def test_a_checked_redeem_batch_stores_the_json_of_the_very_payload_its_worker_gets(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    """The batch's JSON is written with its checks, before the write transaction; what the
    operation stores is the kind's JSON of the payload kept typed for this process's worker,
    and it reads back to that payload."""
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 600
    cafe = cafe_merchant.merchant_id
    items = [_line(alliance, store_merchant, cafe, f"JS-{i}", i, deadline) for i in range(3)]
    with alliance.store.session() as s:
        (view,) = request_redeem_batch(alliance, s, merchant_id=cafe, items=items)
    with alliance.store.read_session() as s:
        op = outbox_repos.get_operation(s, view.id)
        assert op is not None and op.kind == "redeem_batch" and op.lines == 3
        kept = outbox_repos.QUEUED_PAYLOADS.take(op.id, "redeem_batch")
        assert kept is not None and op.payload == REDEEM_BATCH.dump(kept)
        assert REDEEM_BATCH.parse(op.payload) == kept
        assert [line.order_id for line in kept.items] == ["JS-0", "JS-1", "JS-2"]
        assert {line.program for line in kept.items} == {store_merchant.program}
