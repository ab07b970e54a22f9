"""Console sessions: a token opens only its own key's session, until it expires or the key is
revoked; today's figures count one merchant's issues, not another's."""

from __future__ import annotations

import base64

from ledger.alliance import Alliance
from ledger.console import service as console
from ledger.merchants.service import admit_merchant
from ledger.store import repos


def test_a_session_token_opens_its_key_until_expiry_or_revocation(alliance: Alliance) -> None:
    store = admit_merchant(alliance, name="Store", symbol="ST", rate=1)
    cafe = admit_merchant(alliance, name="Cafe", symbol="CF", rate=2)
    opened = console.open_session(alliance, key_id=store.key_id)
    assert opened is not None
    token, me = opened
    found = console.current(alliance, token)
    assert found == me and found.merchant_id == store.merchant_id and found.role == "merchant"
    # Past its expiry: nothing.
    assert console.current(alliance, token, now=me.expires_at + 1) is None
    # The payload rewritten to name another key (its MAC no longer matches): nothing.
    head, mac = token.split(".")
    payload = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode()
    other = payload.replace(store.key_id, cafe.key_id)
    forged = base64.urlsafe_b64encode(other.encode()).decode().rstrip("=") + "." + mac
    assert console.current(alliance, forged) is None
    for junk in ("", "x", "a.b.c", "!!!.00", "." * 2, "a" * 400):
        assert console.current(alliance, junk) is None
    # A revoked key ends its sessions at once (after the credential cache's few seconds the
    # request path would too; the service reads the store here).
    with alliance.store.session() as s:
        repos.revoke_credential(s, store.key_id)
    assert console.current(alliance, token) is None
    assert console.open_session(alliance, key_id=store.key_id) is None


def test_two_sessions_of_one_key_opened_in_the_same_second_are_two_sessions(
        alliance: Alliance) -> None:
    """The figure streams are bounded per session, counted by the token: two sign-ins of one
    key in one second once got one token, and the second browser was refused its stream."""
    store = admit_merchant(alliance, name="Store", symbol="ST", rate=1)
    now = 1_800_000_000
    first = console.open_session(alliance, key_id=store.key_id, now=now)
    second = console.open_session(alliance, key_id=store.key_id, now=now)
    assert first is not None and second is not None
    assert first[0] != second[0]
    for token, me in (first, second):
        assert console.current(alliance, token, now=now) == me


def test_today_counts_a_merchants_own_issues_only(alliance: Alliance) -> None:
    store = admit_merchant(alliance, name="Store", symbol="ST", rate=1)
    admit_merchant(alliance, name="Cafe", symbol="CF", rate=2)
    figures = console.today(alliance, merchant_id=store.merchant_id)
    assert [m.merchant_id for m in figures.merchants] == [store.merchant_id]
    assert figures.merchants[0].issued == 0
    every = console.today(alliance, merchant_id=None)
    assert len(every.merchants) == 2
    assert every.day_start % 86_400 == 0


def test_the_first_block_of_the_day_is_found_by_its_time(alliance: Alliance) -> None:
    gw = alliance.gateway
    head = gw.header("latest")
    start = head.timestamp - head.timestamp % 86_400
    first = console.first_block_of_day(alliance, day_start=start, head=head.number)
    assert gw.header(first).timestamp >= start
    assert first == 0 or gw.header(first - 1).timestamp < start
