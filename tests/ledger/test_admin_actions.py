"""Admin actions through the timelock, as the service runs them on a real anvil: admission is
validated before anything is sent and is all or nothing on chain; a crash at any step leaves
nothing the store cannot finish; with a delay, actions wait (pending) until executed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from eth_account import Account

from ledger import governance
from ledger.alliance import Alliance
from ledger.clearing import service as clearing
from ledger.errors import (
    ContractRevertError,
    LedgerConflictError,
    LedgerValidationError,
)
from ledger.merchants import repos as merchant_repos
from ledger.merchants import service as merchants
from ledger.merchants.clients import ProgramConfig
from ledger.merchants.service import AdmittedMerchant, PendingAdmission, admit_merchant
from ledger.settings import Settings

from .ledger_fixtures import _alliance


def _sent_by_admin(alliance: Alliance) -> int:
    return alliance.gateway.nonce(alliance.admin.address, "latest")


def _store_ids(alliance: Alliance) -> list[int]:
    with alliance.store.read_session() as s:
        return [m.id for m in merchant_repos.list_merchants(s)]


@pytest.mark.parametrize("rate, config, field", [
    (2**24, ProgramConfig(), "rate"),
    (0, ProgramConfig(), "rate"),
    (5, ProgramConfig(600, 3, 7), "period_days"),
    (5, ProgramConfig(86400, 601, 7), "expiry_periods"),
    (5, ProgramConfig(86400, 0, 367), "max_pending_days"),
])
def test_an_out_of_bounds_admission_is_refused_before_anything_is_sent(
        alliance: Alliance, rate: int, config: ProgramConfig, field: str) -> None:
    sent, count = _sent_by_admin(alliance), alliance.contracts.registry.merchant_count()
    with pytest.raises(LedgerValidationError) as info:
        admit_merchant(alliance, name="Too Dear", symbol="DEAR", rate=rate, config=config)
    assert info.value.details.get("field") == field
    assert _sent_by_admin(alliance) == sent
    assert alliance.contracts.registry.merchant_count() == count == 0
    assert governance.pending(alliance) == [] and _store_ids(alliance) == []


def test_a_payout_that_the_chain_refuses_fails_in_simulation_before_anything_is_sent(
        alliance: Alliance) -> None:
    first = admit_merchant(alliance, name="First", symbol="ONE", rate=1)
    sent = _sent_by_admin(alliance)
    with pytest.raises(ContractRevertError) as info:
        admit_merchant(alliance, name="Second", symbol="TWO", rate=1, payout=first.account)
    assert info.value.name == "RegistryInvalidPayout"
    assert _sent_by_admin(alliance) == sent and governance.pending(alliance) == []
    assert alliance.contracts.registry.merchant_count() == 1


def test_admission_lands_in_one_transaction_with_its_own_payout_address(
        alliance: Alliance) -> None:
    payout = Account.create().address
    m = admit_merchant(alliance, name="Cafe", symbol="CAFE", rate=2**24 - 1, payout=payout)
    reg = alliance.contracts.registry
    assert reg.merchant_count() == 1 and _store_ids(alliance) == [m.merchant_id]
    assert reg.payout_of(m.merchant_id) == payout != m.account
    assert reg.rate_of(m.merchant_id) == 2**24 - 1
    assert reg.merchant(m.merchant_id).program == m.program
    # Without one, the merchant gets a payout address of its own (never its relaying key).
    other = admit_merchant(alliance, name="Store", symbol="ST", rate=1)
    assert other.payout not in ("", other.account)
    assert reg.payout_of(other.merchant_id) == other.payout


@pytest.mark.parametrize("crash_in", ["execute", "complete"])
def test_a_crash_mid_admission_is_finished_by_a_retry(
        alliance: Alliance, monkeypatch: pytest.MonkeyPatch, crash_in: str) -> None:
    """The service dies after scheduling (before the execute is sent), or after the chain
    executed the admission (before the store recorded it): the pending action is in the
    store with the merchant's key, and executing it again completes the admission."""
    target = (governance, "execute") if crash_in == "execute" else (
        merchants, "_complete_admission")
    real = getattr(*target)

    def crash(*args: object, **kwargs: object) -> object:
        raise RuntimeError("power cut")

    monkeypatch.setattr(*target, crash)
    with pytest.raises(RuntimeError):
        admit_merchant(alliance, name="Cinema", symbol="STAR", rate=5)
    monkeypatch.setattr(*target, real)
    reg = alliance.contracts.registry
    assert reg.merchant_count() == (1 if crash_in == "complete" else 0)
    assert _store_ids(alliance) == []
    (action,) = governance.pending(alliance)
    assert action.kind == "admit"
    done = merchants.execute_action(alliance, action.id[:10])
    assert isinstance(done, AdmittedMerchant)
    # Now chain and store agree, the credentials work, and nothing is left pending.
    assert reg.merchant_count() == 1 and _store_ids(alliance) == [done.merchant_id]
    assert reg.merchant(done.merchant_id).account == done.account
    assert merchants.merchant_signing_key(alliance, done.merchant_id)
    assert governance.pending(alliance) == []


DELAY = 5


@pytest.fixture
def delayed(settings: Settings) -> Iterator[Alliance]:
    """An alliance whose timelock waits a few seconds (a fresh deployment). Real seconds:
    moving the shared chain's clock would break other tests' wall-clock deadlines."""
    yield from _alliance(settings, timelock_delay_s=DELAY)


def _wait_out_the_delay() -> None:
    time.sleep(DELAY + 1)


def test_with_a_delay_admin_actions_wait_until_executed(delayed: Alliance) -> None:
    a = delayed
    pending = merchants.propose_admission(a, name="Cafe", symbol="CAFE", rate=2)
    assert isinstance(pending, PendingAdmission)
    assert a.contracts.registry.merchant_count() == 0
    (action,) = governance.pending(a)
    with pytest.raises(LedgerConflictError, match="not ready"):
        merchants.execute_action(a, action.id)
    _wait_out_the_delay()
    cafe = merchants.execute_action(a, action.id)
    assert isinstance(cafe, AdmittedMerchant) and cafe.secret
    # Rates, caps, acceptance and reinstatement are announced too; suspension is immediate.
    view = merchants.set_rate(a, merchant_id=cafe.merchant_id, rate=9)
    assert view.rate == 2
    assert clearing.set_caps(a, merchant_id=cafe.merchant_id, liability_cap=0,
                             foreign_cap=50) is False
    assert merchants.suspend_merchant(a, merchant_id=cafe.merchant_id).status == "suspended"
    merchants.reinstate_merchant(a, merchant_id=cafe.merchant_id)
    assert merchants.get_merchant(a, merchant_id=cafe.merchant_id).status == "suspended"
    waiting = governance.pending(a)
    assert [w.kind for w in waiting] == ["set_rate", "set_caps", "reinstate"]
    _wait_out_the_delay()
    for w in waiting:
        merchants.execute_action(a, w.id)
    assert merchants.get_merchant(a, merchant_id=cafe.merchant_id).rate == 9
    assert a.contracts.registry.terms_of(cafe.merchant_id).foreign_cap == 50
    assert merchants.get_merchant(a, merchant_id=cafe.merchant_id).status == "active"
    with a.store.read_session() as s:
        row = merchant_repos.get_merchant(s, cafe.merchant_id)
        assert row is not None and row.status == "active"
    assert governance.pending(a) == []
    # A scheduled action can be cancelled before it runs: it never takes effect.
    merchants.set_rate(a, merchant_id=cafe.merchant_id, rate=11)
    (w,) = governance.pending(a)
    governance.cancel(a, w)
    _wait_out_the_delay()
    assert governance.pending(a) == [] and a.contracts.registry.rate_of(cafe.merchant_id) == 9
    assert a.contracts.timelock.ready_at(w.id_bytes) == 0


def test_a_zero_delay_is_refused_off_a_dev_chain(alliance: Alliance,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.chain.gateway import ChainGateway
    from ledger.contracts.compiler import compile_contracts
    from ledger.deployment import deploy
    from ledger.errors import LedgerConfigError

    monkeypatch.setattr(ChainGateway, "is_dev_chain", property(lambda self: False))
    sent = _sent_by_admin(alliance)
    with pytest.raises(LedgerConfigError, match="dev chain"):
        deploy(alliance.gateway, alliance.admin, compile_contracts(alliance.settings),
               operator=alliance.operator.address, minter=alliance.minter.address)
    assert _sent_by_admin(alliance) == sent
