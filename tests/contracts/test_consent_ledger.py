"""ConsentLedger on anvil: a member's signed grant and revocation, relayed by anyone, as
events with only address, merchant id, kind and text hash; refusals by custom error."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.contracts.client import ContractClient
from ledger.errors import ContractRevertError
from ledger.members.consent import KINDS, ConsentKind, typed_data

from .conftest import Chain

PHONE = KINDS["phone"]


@pytest.fixture
def consent(chain: Chain) -> ContractClient:
    art = chain.artifacts["ConsentLedger"]
    receipt = chain.operator.transact(to=None, data=chain.gateway.encode_deploy(
        art.abi, art.bytecode, [chain.registry.address]))
    return ContractClient(chain.gateway, art.abi, str(receipt["contractAddress"]))


def _sig(chain: Chain, ledger: ContractClient, member: LocalAccount, *, grant: bool,
         merchant_id: int, kind: ConsentKind, nonce: int, deadline: int) -> bytes:
    typed = typed_data(chain_id=chain.gateway.chain_id, ledger=ledger.address,
                       registry=chain.registry.address, grant=grant, member=member.address,
                       merchant_id=merchant_id, kind=kind, nonce=nonce, deadline=deadline)
    return bytes(Account.sign_typed_data(member.key, full_message=typed).signature)


def _grant(chain: Chain, ledger: ContractClient, member: LocalAccount, merchant_id: int, *,
           nonce: int, kind: ConsentKind = PHONE, signer: LocalAccount | None = None
           ) -> dict[str, object]:
    dl = chain.now() + 3600
    sig = _sig(chain, ledger, signer or member, grant=True, merchant_id=merchant_id,
               kind=kind, nonce=nonce, deadline=dl)
    return chain.op(ledger, "grantConsent", member.address, merchant_id, kind.kind,
                    kind.text_hash, nonce, dl, sig)


def _revoke(chain: Chain, ledger: ContractClient, member: LocalAccount, merchant_id: int, *,
            nonce: int, kind: ConsentKind = PHONE) -> dict[str, object]:
    dl = chain.now() + 3600
    sig = _sig(chain, ledger, member, grant=False, merchant_id=merchant_id, kind=kind,
               nonce=nonce, deadline=dl)
    return chain.op(ledger, "revokeConsent", member.address, merchant_id, kind.kind, nonce,
                    dl, sig)


def test_grantConsent_records_the_text_hash_and_emits_only_address_merchant_kind_hash(
        chain: Chain, consent: ContractClient) -> None:
    member = Account.create()
    merchant = chain.admit(symbol="CNS")
    receipt = _grant(chain, consent, member, merchant.merchant_id, nonce=7)
    ((name, args, _),) = consent.decode_logs(receipt["logs"])  # type: ignore[arg-type]
    assert name == "ConsentGranted"
    assert dict(args) == {"member": member.address, "merchantId": merchant.merchant_id,
                          "kind": PHONE.kind, "textHash": PHONE.text_hash}
    assert bytes(consent.view1("consentOf", member.address, merchant.merchant_id,
                               PHONE.kind)) == PHONE.text_hash


def test_revokeConsent_clears_it_and_a_second_revoke_fails(chain: Chain,
                                                          consent: ContractClient) -> None:
    member = Account.create()
    merchant = chain.admit(symbol="CNS")
    _grant(chain, consent, member, merchant.merchant_id, nonce=1)
    receipt = _revoke(chain, consent, member, merchant.merchant_id, nonce=2)
    ((name, _, _),) = consent.decode_logs(receipt["logs"])  # type: ignore[arg-type]
    assert name == "ConsentRevoked"
    assert bytes(consent.view1("consentOf", member.address, merchant.merchant_id,
                               PHONE.kind)) == bytes(32)
    with pytest.raises(ContractRevertError) as err:
        _revoke(chain, consent, member, merchant.merchant_id, nonce=3)
    assert err.value.name == "ConsentNotGranted"
    # Granted again after the revocation: a fresh grant.
    _grant(chain, consent, member, merchant.merchant_id, nonce=4)


def test_grantConsent_refuses_another_signer_a_used_nonce_a_live_grant_or_unknown_merchant(
        chain: Chain, consent: ContractClient) -> None:
    member, other = Account.create(), Account.create()
    merchant = chain.admit(symbol="CNS")
    with pytest.raises(ContractRevertError) as err:
        _grant(chain, consent, member, merchant.merchant_id, nonce=1, signer=other)
    assert err.value.name == "PointsInvalidSignature"
    _grant(chain, consent, member, merchant.merchant_id, nonce=1)
    with pytest.raises(ContractRevertError) as err:
        _grant(chain, consent, member, merchant.merchant_id, nonce=2)
    assert err.value.name == "ConsentAlreadyGranted"
    with pytest.raises(ContractRevertError) as err:
        _grant(chain, consent, member, merchant.merchant_id, nonce=1, kind=KINDS["history"])
    assert err.value.name == "PointsNonceUsed"
    with pytest.raises(ContractRevertError):
        _grant(chain, consent, member, 999_999, nonce=5)
