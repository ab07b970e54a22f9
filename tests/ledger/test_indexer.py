"""The indexer as a worker: one follower, cursors per projection, confirmation depth, reorg
rollback on a real anvil, and reads that say which block they reflect without syncing it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from ledger.alliance import Alliance
from ledger.clearing import service as clearing
from ledger.clearing import statements
from ledger.clearing.projection import ClearingProjection
from ledger.contracts.client import ContractClient
from ledger.indexer import repos as cursor_repos
from ledger.indexer.follower import ChainEvent, Follower, Head, progress_of
from ledger.merchants.service import AdmittedMerchant
from ledger.points.projection import PointsProjection
from ledger.points.reads import history, history_page
from ledger.points.service import request_issue, request_redeem
from ledger.runtime import Runtime, indexer, outbox_worker, workers
from ledger.store.models import ClearedAct, ClearedLine, PointEvent

from .helpers import sign_redemption


def _spend_at_the_cafe(alliance: Alliance, store: AdmittedMerchant, cafe: AdmittedMerchant,
                       member: LocalAccount, *, points: int, order_id: str) -> None:
    """Issue the member ``points + 5`` store points and redeem ``points`` at the cafe (one
    cleared act)."""
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 3600
    sig = sign_redemption(member, program=store.program, chain_id=alliance.gateway.chain_id,
                          registry=alliance.contracts.registry.address, amount=points,
                          merchant_id=cafe.merchant_id, order_id=order_id, nonce=0,
                          deadline=deadline)
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store.merchant_id, member=member.address,
                      points=points + 5, order_id=f"{order_id}-earn")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=cafe.merchant_id, member=member.address,
                       points=points, order_id=order_id, nonce=0, deadline=deadline,
                       signature=sig, program_merchant_id=store.merchant_id)
    outbox_worker(alliance).drain()


def _rows(alliance: Alliance) -> tuple[int, int, int]:
    with alliance.store.read_session() as s:
        return tuple(int(s.scalar(select(func.count()).select_from(t)) or 0)  # type: ignore
                     for t in (PointEvent, ClearedAct, ClearedLine))


def test_reads_do_not_sync_the_indexer_and_say_the_block_they_reflect(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    member = Account.create().address
    before = history_page(alliance, member=member)
    assert before.events == [] and before.as_of_block is None  # nothing indexed yet
    indexer(alliance).catch_up()
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                      points=12, order_id="LAG-1")
    outbox_worker(alliance).drain()
    page = history_page(alliance, member=member)
    # The GET read the read model as it was: the issue's block is not in it yet.
    assert page.events == [] and page.as_of_block is not None
    assert page.as_of_block < alliance.gateway.block_number()
    indexer(alliance).catch_up()
    page = history_page(alliance, member=member)
    assert [e["amount"] for e in page.events] == [12]
    assert page.as_of_block == alliance.gateway.block_number()
    assert page.events[0]["block_number"] <= page.as_of_block


def test_the_runtime_runs_the_indexer_as_a_worker(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    assert any(isinstance(w, Follower) for w in workers(alliance))
    member = Account.create().address
    runtime = Runtime(alliance, [indexer(alliance)])
    runtime.start()
    try:
        with alliance.store.session() as s:
            request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                          points=3, order_id="BG-1")
        outbox_worker(alliance).drain()
        deadline = time.monotonic() + 30
        while not history(alliance, member=member)[0]:
            assert time.monotonic() < deadline, "the indexer worker never indexed the issue"
            time.sleep(0.1)
    finally:
        runtime.stop()


def test_the_indexer_stays_the_confirmation_depth_behind_the_head(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    alliance.settings = alliance.settings.model_copy(update={"confirmations": 3})
    member = Account.create().address
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                      points=4, order_id="DEEP-1")
    worker = outbox_worker(alliance)
    worker.drain()
    follower = indexer(alliance)
    follower.catch_up()
    assert follower.synced_blocks()["points"] == alliance.gateway.block_number() - 3
    assert history(alliance, member=member)[0] == []
    for _ in range(3):
        alliance.gateway.rpc("evm_mine")
    follower.catch_up()
    assert [e["amount"] for e in history(alliance, member=member)[0]] == [4]


def test_a_new_projection_reads_from_the_deployment_block(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        chain_snapshot: None) -> None:
    """A store upgraded to a new projection (the clearing one, say) fills it from the start,
    while the projections it already had read on from their own cursors."""
    _spend_at_the_cafe(alliance, store_merchant, cafe_merchant, Account.create(), points=6,
                       order_id="LATE-1")
    Follower(alliance, [PointsProjection(alliance)]).catch_up()
    points_rows, acts, _ = _rows(alliance)
    assert points_rows == 2 and acts == 0
    indexer(alliance).catch_up()
    assert _rows(alliance) == (2, 1, 1)  # the points rows were not read twice


@pytest.mark.parametrize("blocks_after", ["fewer", "more"])
def test_a_reorg_drops_what_the_lost_blocks_gave_every_projection(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        chain_snapshot: None, blocks_after: str) -> None:
    member = Account.create()
    _spend_at_the_cafe(alliance, store_merchant, cafe_merchant, member, points=10,
                       order_id="KEEP-1")
    follower = indexer(alliance)
    follower.catch_up()
    kept = _rows(alliance)
    assert kept == (2, 1, 1)
    snap = alliance.gateway.rpc("evm_snapshot")
    start = alliance.gateway.block_number()
    _spend_at_the_cafe(alliance, store_merchant, cafe_merchant, Account.create(), points=7,
                       order_id="LOST-1")
    follower.catch_up()
    assert _rows(alliance) == (4, 2, 2)
    lost = alliance.gateway.block_number() - start
    period = alliance.contracts.clearing.current_period()
    net_then = statements.statement(alliance, period=period,
                                    merchant_id=cafe_merchant.merchant_id).document["totals"]
    assert net_then["net"] == 17

    # The blocks after the snapshot are replaced: by fewer blocks (the cursor's block is
    # gone) or by more (it is there with another hash).
    alliance.gateway.rpc("evm_revert", [snap])
    alliance.gateway.rpc("evm_increaseTime", [60])
    for _ in range(1 if blocks_after == "fewer" else lost + 3):
        alliance.gateway.rpc("evm_mine")
    follower.catch_up()
    assert _rows(alliance) == kept
    assert [e["amount"] for e in history(alliance, member=member.address)[0]] == [10, 15]
    st = statements.statement(alliance, period=period, merchant_id=cafe_merchant.merchant_id)
    assert st.document["totals"]["net"] == 10 == clearing.position(
        alliance, merchant_id=cafe_merchant.merchant_id, period=period).net
    assert st.as_of_block == alliance.gateway.block_number()
    # A second follower (another process) finds nothing left to undo or add.
    assert Follower(alliance, [PointsProjection(alliance),
                               ClearingProjection(alliance)]).catch_up() == 0


class _Recorder:
    """A projection that keeps what it is handed (the follower is the subject here)."""

    events = frozenset({"PointsIssued"})

    def __init__(self, name: str, follows: dict[str, ContractClient]) -> None:
        self.name = name
        self._follows = follows
        self.seen: list[ChainEvent] = []
        self.rolled_back: list[int] = []

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        return self._follows

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        self.seen.extend(events)
        return len(events)

    def rollback(self, session: Session, after_block: int) -> None:
        self.rolled_back.append(after_block)

    def on_head(self, session: Session, head: Head) -> int:
        return 0


def test_each_projection_gets_only_the_events_of_the_contracts_it_follows(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        chain_snapshot: None) -> None:
    member = Account.create().address
    with alliance.store.session() as s:
        for m in (store_merchant, cafe_merchant):
            request_issue(alliance, s, merchant_id=m.merchant_id, member=member, points=2,
                          order_id=f"ONLY-{m.merchant_id}")
    outbox_worker(alliance).drain()
    cafe = _Recorder("cafe-only", {cafe_merchant.program:
                                   alliance.contracts.program(cafe_merchant.program)})
    both = _Recorder("both", {m.program: alliance.contracts.program(m.program)
                              for m in (store_merchant, cafe_merchant)})
    Follower(alliance, [cafe, both]).catch_up()
    assert [(e.name, e.address) for e in cafe.seen] == [("PointsIssued", cafe_merchant.program)]
    assert sorted(e.address for e in both.seen) == sorted(
        [store_merchant.program, cafe_merchant.program])
    assert all(e.tx_hash.startswith("0x") and e.block_time > 0 for e in both.seen)
    assert cafe.rolled_back == both.rolled_back == []


def _caught_up_then_one_issue_mined(alliance: Alliance, merchant: AdmittedMerchant,
                                    order_id: str, points: int) -> tuple[Follower, str]:
    """A follower caught up, then one issue to a new member mined and not yet read by it."""
    follower = indexer(alliance)
    follower.catch_up()
    member = Account.create().address
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=merchant.merchant_id, member=member,
                      points=points, order_id=order_id)
    outbox_worker(alliance).drain()
    return follower, member


def test_the_indexer_reads_a_new_block_in_two_round_trips_and_an_idle_tip_in_one(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    """The follower shares the process with the API: a round after one new block asks the
    node for the tip and the logs only (the tip is also the block whose time and hash it
    keeps, and the cursor block's hash is the tip's parent hash), and a round that finds the
    same tip asks for nothing else and does not touch the store."""
    follower, member = _caught_up_then_one_issue_mined(alliance, store_merchant, "RT-1", 9)
    gw = alliance.gateway

    def trips() -> int:  # web3's provider's and the gateway's lean client's
        return gw.round_trips

    before = trips()
    assert follower.process_once() == 1  # the issue's row
    assert trips() - before == 2
    assert [e["amount"] for e in history(alliance, member=member)[0]] == [9]
    before = trips()
    assert follower.process_once() == 0
    assert trips() - before == 1


def test_an_indexer_round_reads_the_node_through_the_lean_client_not_web3(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    """The tip, the headers and the logs of a round go through ``ledger.chain.rpc`` (one
    keep-alive connection, no web3 provider or formatters): web3's provider sees none of a
    round's calls, and the rows are the same."""
    follower, member = _caught_up_then_one_issue_mined(alliance, store_merchant, "RT-2", 4)
    gw = alliance.gateway
    before, lean = gw.provider.round_trips, gw.reads.round_trips
    assert follower.process_once() == 1
    assert follower.process_once() == 0
    assert gw.provider.round_trips == before
    assert gw.reads.round_trips - lean == 3
    assert [e["amount"] for e in history(alliance, member=member)[0]] == [4]


def test_an_indexer_round_reads_the_merchants_once_a_transaction(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        chain_snapshot: None) -> None:
    """Every projection asks for the admitted merchants (to follow their programs, to name an
    event's merchant): a round reads them once in its read transaction and once in its write
    transaction, not once a projection (seven queries a round before), and the read model is
    the same."""
    follower = indexer(alliance)
    follower.catch_up()
    _spend_at_the_cafe(alliance, store_merchant, cafe_merchant, Account.create(), points=4,
                       order_id="ONCE-1")
    merchants: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM merchants" in statement:
            merchants.append(statement)

    engine = alliance.store.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        assert follower.process_once() > 0
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(merchants) == 2, merchants
    with alliance.store.read_session() as s:
        lines = list(s.scalars(select(ClearedLine).where(ClearedLine.points == 4)))
        assert [(x.points_of, x.accepted_by) for x in lines] == [
            (store_merchant.merchant_id, cafe_merchant.merchant_id)]
        assert s.scalar(select(func.count()).select_from(PointEvent).where(
            PointEvent.kind == "redeemed", PointEvent.amount == 4)) == 1


def test_a_round_over_a_new_block_writes_the_read_model_in_one_transaction(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    """A round's events and the head's clock (the projections' ``on_head``: releases, gift
    settlements) go into the store in one write transaction (SQLite's one writer, which
    requests and the outbox wait for, taken once a round; it was taken twice), and a round
    that finds the same tip writes nothing."""
    follower, member = _caught_up_then_one_issue_mined(alliance, store_merchant, "ONE-TX-1", 6)
    commits: list[int] = []

    def note(conn: object) -> None:
        commits.append(1)

    engine = alliance.store.engine
    event.listen(engine, "commit", note)
    try:
        assert follower.process_once() == 1
        assert len(commits) == 1
        assert follower.process_once() == 0
        assert len(commits) == 1
    finally:
        event.remove(engine, "commit", note)
    assert [e["amount"] for e in history(alliance, member=member)[0]] == [6]


def test_the_indexer_wakes_on_the_outboxs_receipt_not_at_its_next_poll(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    # A poll of 30 s: only the wake-up on the block the outbox's receipt shows (the same
    # process's gateway) can index the issue within the few seconds allowed below.
    follower = Follower(alliance, [PointsProjection(alliance)], idle_sleep_s=30.0)
    follower.catch_up()
    progress = progress_of(alliance.store)
    version = progress.version
    member = Account.create().address
    runtime = Runtime(alliance, [follower])
    runtime.start()
    try:
        time.sleep(0.3)  # the follower's thread is in its idle wait
        with alliance.store.session() as s:
            request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                          points=3, order_id="WAKE-1")
        outbox_worker(alliance).drain()
        t0 = time.monotonic()
        while not history(alliance, member=member)[0]:
            assert time.monotonic() - t0 < 10, "the indexer waited for its poll"
            time.sleep(0.05)
    finally:
        t1 = time.monotonic()
        runtime.stop()
    assert time.monotonic() - t1 < 35
    # The readers of the indexer's progress (the console's stream) see it move.
    assert progress.version > version
    assert progress.block == follower.synced_blocks()["points"]


def test_the_gateway_tells_waiters_of_each_block_number_change(alliance: Alliance) -> None:
    gw = alliance.gateway
    since = gw.blocks_seen
    assert not gw.wait_for_new_block(since, 0.05)  # nothing seen: waits, False
    number = gw.block_number()  # noted (a change if another number was seen last)
    since = gw.blocks_seen
    gw.saw_block(number)  # the same block again: no change
    assert gw.blocks_seen == since
    gw.saw_block(number - 1)  # lower (a chain reverted to a snapshot) is a change too
    assert gw.wait_for_new_block(since, 0.05)


def test_noted_blocks_keep_the_newest_hash_and_forget_those_far_below(
        alliance: Alliance) -> None:
    base = 10_000_000  # above any block the deployment noted
    with alliance.store.session() as s:
        for n in range(base, base + 600):
            cursor_repos.note_block(s, n, f"0x{n:064x}", keep=100)
        # The same block again (a rewind read it anew): its new hash replaces the old one.
        cursor_repos.note_block(s, base + 599, "0x" + "ab" * 32, keep=100)
    with alliance.store.read_session() as s:
        noted = cursor_repos.noted_blocks(s, at_most=base + 10_000, limit=10_000)
    assert noted[0] == (base + 599, "0x" + "ab" * 32)
    assert noted[1] == (base + 598, f"0x{base + 598:064x}")
    numbers = [n for n, _ in noted]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)
    # Forgotten up to keep below the last multiple of FORGET_EVERY noted, and never more.
    last_forget = (base + 599) // cursor_repos.FORGET_EVERY * cursor_repos.FORGET_EVERY
    assert min(numbers) == last_forget - 100
    assert len(numbers) <= 100 + cursor_repos.FORGET_EVERY
