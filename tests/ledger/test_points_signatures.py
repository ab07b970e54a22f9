"""A member's signed Redeem / Convert is checked before it is queued (issue 8, member-side
signing gaps): another signer, another program's domain, a deadline out of range or a used
nonce is refused at once with a named code, and nothing is written."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.alliance import Alliance
from ledger.errors import LedgerSignatureError
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.views import get_operation
from ledger.points.service import (
    MAX_DEADLINE_AHEAD_S,
    SignedRedemption,
    request_cancel_signatures,
    request_convert,
    request_issue,
    request_redeem,
    request_redeem_batch,
)
from ledger.runtime import outbox_worker
from ledger.signing import cancel_nonces_typed_data

from .helpers import sign_conversion, sign_redemption


def _chain_now(alliance: Alliance) -> int:
    return int(alliance.gateway.block("latest")["timestamp"])


def _refused(alliance: Alliance, code: str, call: object) -> LedgerSignatureError:
    with alliance.store.read_session() as s:
        before = outbox_repos.count_operations(s)
    with pytest.raises(LedgerSignatureError) as exc, alliance.store.session() as s:
        call(s)  # type: ignore[operator]
    assert exc.value.code == code, exc.value.message
    with alliance.store.read_session() as s:
        assert outbox_repos.count_operations(s) == before
    return exc.value


def test_redeem_signed_in_the_acceptors_domain_for_foreign_points_is_refused(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    member = Account.create()
    deadline = _chain_now(alliance) + 600
    # Spending the store's points at the cafe: the member must sign in the *store's* program
    # domain; signing in the cafe's (the relayer's) is the mistake a README-only wallet made.
    wrong = sign_redemption(member, program=cafe_merchant.program,
                            registry=alliance.contracts.deployment.registry,
                            chain_id=alliance.gateway.chain_id, amount=10,
                            merchant_id=cafe_merchant.merchant_id, order_id="CAFE-1", nonce=7,
                            deadline=deadline)
    err = _refused(alliance, "signature-mismatch", lambda s: request_redeem(
        alliance, s, merchant_id=cafe_merchant.merchant_id, member=member.address, points=10,
        order_id="CAFE-1", nonce=7, deadline=deadline, signature=wrong,
        program_merchant_id=store_merchant.merchant_id))
    assert store_merchant.program in err.message and err.details["field"] == "signature"
    right = sign_redemption(member, program=store_merchant.program,
                            registry=alliance.contracts.deployment.registry,
                            chain_id=alliance.gateway.chain_id, amount=10,
                            merchant_id=cafe_merchant.merchant_id, order_id="CAFE-1", nonce=7,
                            deadline=deadline)
    with alliance.store.session() as s:
        op = request_redeem(alliance, s, merchant_id=cafe_merchant.merchant_id,
                            member=member.address, points=10, order_id="CAFE-1", nonce=7,
                            deadline=deadline, signature=right,
                            program_merchant_id=store_merchant.merchant_id)
    assert op.status == "queued"


def test_redeem_signed_by_someone_else_or_garbage_is_refused(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    member, thief = Account.create(), Account.create()
    mid = store_merchant.merchant_id
    deadline = _chain_now(alliance) + 600
    by_thief = sign_redemption(thief, program=store_merchant.program,
                               registry=alliance.contracts.deployment.registry,
                               chain_id=alliance.gateway.chain_id, amount=5, merchant_id=mid,
                               order_id="T-1", nonce=1, deadline=deadline)
    for sig in (by_thief, "0x" + "ab" * 65, "0x" + "00" * 65, "0x" + "11" * 66):
        _refused(alliance, "signature-mismatch", lambda s, sig=sig: request_redeem(
            alliance, s, merchant_id=mid, member=member.address, points=5, order_id="T-1",
            nonce=1, deadline=deadline, signature=sig))


def test_deadline_already_past_or_too_far_ahead_is_refused(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    member = Account.create()
    mid = store_merchant.merchant_id
    now = _chain_now(alliance)
    for deadline, code in ((now - 1, "deadline-passed"),
                           (now + MAX_DEADLINE_AHEAD_S + 60, "deadline-too-far")):
        sig = sign_redemption(member, program=store_merchant.program,
                              registry=alliance.contracts.deployment.registry,
                              chain_id=alliance.gateway.chain_id, amount=5, merchant_id=mid,
                              order_id="D-1", nonce=2, deadline=deadline)
        err = _refused(alliance, code, lambda s, d=deadline, sig=sig: request_redeem(
            alliance, s, merchant_id=mid, member=member.address, points=5, order_id="D-1",
            nonce=2, deadline=d, signature=sig))
        assert err.details["field"] == "deadline"


def test_a_used_nonce_is_refused_and_a_batch_names_the_line(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    member = Account.create()
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member.address, points=50,
                      order_id="N-EARN")
    outbox_worker(alliance).drain()
    deadline = _chain_now(alliance) + 600

    def signed(order_id: str, nonce: int) -> SignedRedemption:
        return SignedRedemption(member.address, 5, order_id, nonce, deadline, sign_redemption(
            member, program=store_merchant.program,
            registry=alliance.contracts.deployment.registry, chain_id=alliance.gateway.chain_id,
            amount=5, merchant_id=mid, order_id=order_id, nonce=nonce, deadline=deadline))

    first = signed("N-1", 0)
    with alliance.store.session() as s:
        op = request_redeem(alliance, s, merchant_id=mid, member=member.address, points=5,
                            order_id="N-1", nonce=0, deadline=deadline,
                            signature=first.signature)
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=op.id, merchant_id=mid).status == "confirmed"
    err = _refused(alliance, "nonce-used", lambda s: request_redeem_batch(
        alliance, s, merchant_id=mid, items=[signed("N-2", 1), signed("N-3", 0)]))
    assert err.details == {"field": "nonce", "index": 1}
    assert err.message.startswith("items[1]: ")


def test_convert_signed_for_another_target_is_refused(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    member = Account.create()
    deadline = _chain_now(alliance) + 600
    # toMerchantId must be the relaying (target) merchant; here it names the source.
    sig = sign_conversion(member, program=store_merchant.program,
                          registry=alliance.contracts.deployment.registry,
                          chain_id=alliance.gateway.chain_id, amount=100,
                          to_merchant_id=store_merchant.merchant_id, min_out=1,
                          order_id="CONV-1", nonce=3, deadline=deadline)
    _refused(alliance, "signature-mismatch", lambda s: request_convert(
        alliance, s, merchant_id=cafe_merchant.merchant_id, member=member.address,
        from_merchant_id=store_merchant.merchant_id, points=100, min_out=1,
        order_id="CONV-1", nonce=3, deadline=deadline, signature=sig))


def test_contract_wallet_signature_is_left_to_the_chain(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    wallet = Account.create().address
    # Any code at the member's address makes it an ERC-1271 wallet: only the chain can judge
    # its signature, so the service queues it (deadline and nonce are still checked).
    alliance.gateway.rpc("anvil_setCode", [wallet, "0x00"])
    deadline = _chain_now(alliance) + 600
    with alliance.store.session() as s:
        op = request_redeem(alliance, s, merchant_id=store_merchant.merchant_id,
                            member=wallet, points=5, order_id="W-1", nonce=4,
                            deadline=deadline, signature="0x" + "ab" * 70)
    assert op.status == "queued"
    _refused(alliance, "deadline-passed", lambda s: request_redeem(
        alliance, s, merchant_id=store_merchant.merchant_id, member=wallet, points=5,
        order_id="W-2", nonce=4, deadline=int(time.time()) - 10**6,
        signature="0x" + "ab" * 70))


def _sign_cancel(member: LocalAccount, alliance: Alliance, program: str, *, word_pos: int,
                 mask: int, deadline: int) -> str:
    typed = cancel_nonces_typed_data(
        chain_id=alliance.gateway.chain_id, program=program,
        registry=alliance.contracts.deployment.registry, member=member.address,
        word_pos=word_pos, mask=mask, deadline=deadline)
    return "0x" + bytes(Account.sign_typed_data(member.key, full_message=typed).signature).hex()


def test_a_cancelled_signature_can_never_land_and_others_still_do(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    member = Account.create()
    mid = store_merchant.merchant_id
    program = alliance.contracts.program(store_merchant.program)
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member.address, points=50,
                      order_id="C-EARN")
    outbox_worker(alliance).drain()
    deadline = _chain_now(alliance) + 600
    registry = alliance.contracts.deployment.registry

    def sig(order_id: str, nonce: int) -> str:
        return sign_redemption(member, program=program.address, registry=registry,
                               chain_id=alliance.gateway.chain_id, amount=5, merchant_id=mid,
                               order_id=order_id, nonce=nonce, deadline=deadline)

    # Two payments signed at once (unordered nonces 5 and 6); the first is abandoned.
    abandoned, kept = sig("C-1", 5), sig("C-2", 6)
    _refused(alliance, "signature-mismatch", lambda s: request_cancel_signatures(
        alliance, s, merchant_id=mid, member=member.address, word_pos=0, mask=1 << 5,
        deadline=deadline, signature=_sign_cancel(Account.create(), alliance, program.address,
                                                  word_pos=0, mask=1 << 5,
                                                  deadline=deadline)))
    with alliance.store.session() as s:
        cancel = request_cancel_signatures(
            alliance, s, merchant_id=mid, member=member.address, word_pos=0, mask=1 << 5,
            deadline=deadline, signature=_sign_cancel(member, alliance, program.address,
                                                      word_pos=0, mask=1 << 5,
                                                      deadline=deadline))
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=cancel.id, merchant_id=mid).status == \
        "confirmed"
    assert program.nonce_bitmap(member.address, 0) == 1 << 5
    _refused(alliance, "nonce-used", lambda s: request_redeem(
        alliance, s, merchant_id=mid, member=member.address, points=5, order_id="C-1",
        nonce=5, deadline=deadline, signature=abandoned))
    with alliance.store.session() as s:
        ok = request_redeem(alliance, s, merchant_id=mid, member=member.address, points=5,
                            order_id="C-2", nonce=6, deadline=deadline, signature=kept)
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=ok.id, merchant_id=mid).status == "confirmed"
    assert program.spendable_of(member.address) == 45
    # Cancelling what is already cancelled is refused before it costs gas.
    _refused(alliance, "nonce-used", lambda s: request_cancel_signatures(
        alliance, s, merchant_id=mid, member=member.address, word_pos=0, mask=1 << 5 | 1 << 6,
        deadline=deadline, signature=_sign_cancel(member, alliance, program.address,
                                                  word_pos=0, mask=1 << 5 | 1 << 6,
                                                  deadline=deadline)))


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_signature_forms_eth_account_takes_but_the_chain_refuses_are_refused(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    member = Account.create()
    mid = store_merchant.merchant_id
    deadline = _chain_now(alliance) + 600
    good = bytes.fromhex(sign_redemption(
        member, program=store_merchant.program, registry=alliance.contracts.deployment.registry,
        chain_id=alliance.gateway.chain_id, amount=5, merchant_id=mid, order_id="M-1", nonce=9,
        deadline=deadline)[2:])
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    # eth-account recovers the member from both; OpenZeppelin's ECDSA rejects both.
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    v_01 = good[:64] + bytes([v - 27])
    for sig in (high_s, v_01):
        _refused(alliance, "signature-mismatch", lambda s, sig=sig: request_redeem(
            alliance, s, merchant_id=mid, member=member.address, points=5, order_id="M-1",
            nonce=9, deadline=deadline, signature="0x" + sig.hex()))
