"""Coupons benchmark: gas of a batch grant and of a redemption, each next to its floor, in one
run on a fresh local anvil.

Prints:
- gas per coupon in one batch grant of 1,000 new members, next to the floor of what ERC-721
  must write per coupon (owner slot, balance slot, Transfer) plus the transaction's base,
  calldata and the campaign counter (target <= 1.15x);
- gas of a redemption at the issuer and at another merchant, next to the used-bitmap floor:
  what any redemption that marks a coupon used in a bitmap must pay (base, calldata, signature
  recovery, the member's nonce bit, the coupon's used bit, the order's dedup slot, the budget,
  the redemption log; plus the two clearing positions and their log when cross-merchant)
  (target <= 1.5x), with what the book writes beyond that floor named;
- what marking used costs as a bitmap bit next to OpenZeppelin's plain `_burn` (owner slot
  cleared, balance decremented, Transfer), both in protocol gas;
- the gas of every other coupon operation (campaign, single grant, pause, resume, voucher
  claim and cancel, rollback, transfer), each next to the figure main's CouponBook gave on this
  machine before the redemption work (the "reference" column);
- gas per line of a ``redeemBatch`` of 10 (the outbox's grouping of queued redemptions)
  next to one redemption sent alone;
- with ``--api``: coupons granted/s (batches of ``--api-batch`` members through ``POST
  /v1/coupons/grant``) and redeemed/s (``POST /v1/coupons/redeem`` from concurrent clients)
  through a real uvicorn server, each next to points issued/s through the same server and
  batching (its reference: ``POST /v1/points/issue-batch`` of as many lines, and single
  ``POST /v1/points/issue`` requests). Redemptions are single requests; the outbox sends
  those queued together in one ``redeemBatch`` transaction, and each request reads the chain
  in one JSON-RPC batch.

The API batch is 500, not 1,000: a points issue batch of 1,000 lines asks the outbox for
80k + 90k x 1,000 = 90M gas (ledger/points/kinds.py's bound), past anvil's 60M block, and
the node refuses it ("tx.gas_limit > env.block.gas_limit") for ever: the reference half
never confirmed. 500 lines (45M) land in one transaction, as 500 coupons (26M) do.

Usage: .venv/bin/python scripts/bench_coupons.py [--batch 1000] [--api] [--api-grants 5000]
       [--api-redeems 200] [--api-batch 500]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import _serve, _wait_confirmed  # noqa: E402

from api.client import AllianceClient  # noqa: E402
from ledger import runtime  # noqa: E402
from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.chain.sender import TransactionSender  # noqa: E402
from ledger.coupons import repos as coupon_repos  # noqa: E402
from ledger.coupons import service as coupons_service  # noqa: E402
from ledger.coupons.clients import CampaignTerms, CouponBookClient, CouponKind  # noqa: E402
from ledger.coupons.signing import redeem_coupon_typed_data  # noqa: E402
from ledger.merchants.clients import ProgramConfig  # noqa: E402
from ledger.merchants.service import (  # noqa: E402
    AdmittedMerchant,  # noqa: E402
    admit_merchant,
    merchant_signing_key,
)
from ledger.outbox import repos as outbox_repos  # noqa: E402
from ledger.points.service import order_ref  # noqa: E402
from ledger.settings import Settings  # noqa: E402

# Protocol gas prices the floors are computed from (EIP-2929/2200/3529, yellow paper).
NEW_SLOT = 22_100  # SSTORE 0 -> non-zero, cold access included
UPDATE_SLOT = 5_000  # SSTORE non-zero -> non-zero, cold access included
CLEAR_REFUND = 4_800  # SSTORE non-zero -> 0 refund
TX_BASE = 21_000
ECRECOVER = 3_000
LOG_BASE, LOG_TOPIC, LOG_BYTE = 375, 375, 8


def log_cost(topics: int, data_bytes: int) -> int:
    return LOG_BASE + LOG_TOPIC * topics + LOG_BYTE * data_bytes


def calldata_cost(data: bytes) -> int:
    nonzero = sum(1 for b in data if b)
    return 16 * nonzero + 4 * (len(data) - nonzero)


TRANSFER_LOG = log_cost(4, 0)  # ERC-721 Transfer: three indexed arguments, no data


def grant_floor(calldata: bytes, n: int) -> int:
    """Per coupon: owner slot and balance slot of a new holder, Transfer. Per batch: base,
    calldata, the campaign's counter slot."""
    return n * (2 * NEW_SLOT + TRANSFER_LOG) + TX_BASE + calldata_cost(calldata) + UPDATE_SLOT


def redeem_floor(calldata: bytes, *, cross: bool, used_word_new: bool,
                 nonce_word_new: bool) -> int:
    """The used-bitmap floor of one redemption (see the module docstring)."""
    floor = TX_BASE + calldata_cost(calldata) + ECRECOVER
    floor += NEW_SLOT if nonce_word_new else UPDATE_SLOT
    floor += NEW_SLOT if used_word_new else UPDATE_SLOT
    floor += NEW_SLOT  # the order's dedup slot
    floor += UPDATE_SLOT  # the campaign's budget used
    floor += log_cost(4, 96)  # CouponRedeemed
    if cross:
        floor += 2 * UPDATE_SLOT + log_cost(4, 96)  # two positions, Cleared
    return floor


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--api", action="store_true", help="also the API throughput figures")
    ap.add_argument("--api-grants", type=int, default=5000)
    ap.add_argument("--api-redeems", type=int, default=200)
    ap.add_argument("--api-batch", type=int, default=500,
                    help="members per grant and lines per points issue batch (see above)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), rate_limit_per_minute=10**9)
        alliance = Alliance.open(settings)
        try:
            run(alliance, args.batch)
            other_ops(alliance)
            batch_redeem_gas(alliance)
            if args.api:
                api_throughput(alliance, grants=args.api_grants, redeems=args.api_redeems,
                               batch=args.api_batch)
        finally:
            alliance.close()
            # the node the alliance started for this run (its state dir is about to go)
            anvil.stop(settings)
    return 0


def run(alliance: Alliance, batch: int) -> dict[str, float]:
    """Print the grant and redemption figures; give each ratio to its floor by name."""
    ratios: dict[str, float] = {}
    gw = alliance.gateway
    book = alliance.contracts.coupons
    assert book is not None, "this deployment has no coupon book"
    ids, senders = [], []
    for sym in ("CI", "CA"):
        m = admit_merchant(alliance, name=f"Bench {sym}", symbol=sym, rate=1,
                           config=ProgramConfig())
        ids.append(m.merchant_id)
        senders.append(TransactionSender(gw, merchant_signing_key(alliance, m.merchant_id)))
    (issuer, acceptor), (iss_tx, acc_tx) = ids, senders

    def send(tx: TransactionSender, data: bytes) -> dict[str, object]:
        return tx.transact(to=book.address, data=data, gas=59_000_000)

    terms = CampaignTerms(issuer=issuer, kind=CouponKind.FIXED_OFF, value=100,
                          budget=10**12, acceptors=(acceptor,))
    send(iss_tx, book.encode("createCampaign", terms.as_tuple()))
    cid = book.campaign_count()

    # ---- batch grant
    members = [to_checksum_address(os.urandom(20)) for _ in range(batch)]
    data = book.encode("grantBatch", cid, members)
    used = int(send(iss_tx, data)["gasUsed"])  # type: ignore[call-overload]
    floor = grant_floor(data, batch)
    ratios["grant"] = used / floor
    print(f"batch grant of {batch}: {used / batch:,.0f} gas per coupon vs floor "
          f"{floor / batch:,.0f} = {used / floor:.3f}x  (target <= 1.15x)")

    # ---- redemptions (holders with keys)
    holders = [Account.create() for _ in range(4)]
    send(iss_tx, book.encode("grantBatch", cid, [h.address for h in holders]))
    coupon0 = _first_coupon(book, cid, batch)
    now = int(gw.block("latest")["timestamp"])

    def redeem(i: int, at: int, tx: TransactionSender, nonce: int) -> tuple[int, bytes]:
        coupon = coupon0 + i
        order = keccak(text=f"bench-{i}")
        digest = book.redeem_digest(holder=holders[i].address, coupon_id=coupon, acceptor=at,
                                    order_ref=order, order_amount=1000, nonce=nonce,
                                    deadline=now + 3600)
        sig = bytes(Account.unsafe_sign_hash(digest, holders[i].key).signature)
        data = book.encode("redeem", (coupon, at, order, 1000, nonce, now + 3600), sig)
        return int(send(tx, data)["gasUsed"]), data  # type: ignore[call-overload]

    # The bench's coupons all sit in the campaign's first used-bitmap words, which the
    # grants left at zero: the first redemption opens the word, later ones update it.
    rows = [("at the issuer, first in its used word", 0, issuer, iss_tx, True),
            ("at the issuer", 1, issuer, iss_tx, False),
            ("at another merchant (cleared; first act of the period: positions new)", 2,
             acceptor, acc_tx, False),
            ("at another merchant (cleared; positions already open)", 3, acceptor, acc_tx,
             False)]
    for label, i, at, tx, word_new in rows:
        g, data = redeem(i, at, tx, nonce=1)
        f = redeem_floor(data, cross=at != issuer, used_word_new=word_new, nonce_word_new=True)
        if i == 2:
            f += 2 * (NEW_SLOT - UPDATE_SLOT)  # both positions written for the first time
        ratios[f"redeem {label}"] = g / f
        print(f"redeem {label}: {g:,} gas vs used-bitmap floor {f:,} = {g / f:.3f}x"
              "  (target <= 1.5x)")
    print("  beyond the used-bitmap floor: registry reads (acceptor, issuer: calls and cold "
          "slots), the holder's owner slot, campaign reads (3 cold slots), the clearing's call "
          "with its period and position reads; the rollback record rides in the order slot")
    bit = UPDATE_SLOT
    burn = 2 * UPDATE_SLOT + TRANSFER_LOG - CLEAR_REFUND
    print(f"marking used: bitmap bit {bit:,} gas (word already open; {NEW_SLOT:,} for a new "
          f"word, i.e. once per 256 serials) vs OZ _burn {burn:,} gas (owner cleared with "
          f"refund, balance, Transfer) = {bit / burn:.3f}x")
    return ratios


def _first_coupon(book: CouponBookClient, campaign_id: int, granted_before: int) -> int:
    """The id of the coupon following the first batch: read from the last Transfer logs."""
    logs = book.gateway.rpc("eth_getLogs", [{
        "address": book.address, "fromBlock": "latest", "toBlock": "latest"}])
    ids = sorted(int(a["tokenId"]) for n, a, _ in book.decode_logs(logs) if n == "Transfer")
    assert ids and ids[0] >> 72 == campaign_id and (ids[0] & 0xFFFFFFFF) == granted_before + 1
    return ids[0]



# Gas of main's CouponBook (commit 2e73908, before the redemption work) for the same calls,
# measured by this script's other_ops on the same machine: the reference of "unchanged or
# better" (tests/contracts/test_coupons_gas.py asserts it).
REFERENCE_GAS = {
    "createCampaign (one acceptor)": 160_345,
    "grant (one, _safeMint)": 91_420,
    "pause": 39_559,
    "resume": 39_547,
    "claimVoucher": 122_749,
    "cancelVoucher": 58_793,
    "transferFrom": 57_504,
    "rollback (cross-merchant)": 69_761,
}


def batch_redeem_gas(alliance: Alliance, lines: int = 10) -> tuple[int, int]:
    """Gas of one cross-merchant redemption sent alone next to a ``redeemBatch`` of
    ``lines`` (the outbox groups queued redemptions that way), both through the service and
    the outbox; print the gas per line and the ratio; give (alone, batch)."""
    iss = admit_merchant(alliance, name="Batch issuer", symbol="BI", rate=1)
    acc = admit_merchant(alliance, name="Batch acceptor", symbol="BA", rate=1)
    with alliance.store.session() as s:
        coupons_service.request_create_campaign(
            alliance, s, merchant_id=iss.merchant_id, kind="fixed_off", value=100,
            budget=10**12, acceptors=[acc.merchant_id])
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        cid = max(c.campaign_id for c in coupon_repos.campaigns(s, issuer=iss.merchant_id))
    holders = [Account.create() for _ in range(lines + 2)]
    with alliance.store.session() as s:
        coupons_service.request_grant(alliance, s, merchant_id=iss.merchant_id,
                                      campaign_id=cid, members=[h.address for h in holders])
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    book = alliance.contracts.coupons
    assert book is not None

    def redeem(group: list[tuple[int, Any]]) -> list[int]:
        now = int(alliance.gateway.block("latest")["timestamp"])
        ids = []
        with alliance.store.session() as s:
            for i, h in group:
                c = coupon_repos.held_by(s, h.address)[0].coupon_id
                typed = redeem_coupon_typed_data(
                    chain_id=alliance.gateway.chain_id, book=book.address,
                    registry=alliance.contracts.deployment.registry, holder=h.address,
                    coupon_id=c, acceptor=acc.merchant_id, order_ref=order_ref(f"rb-{i}"),
                    order_amount=1000, nonce=1, deadline=now + 3600)
                sig = Account.sign_typed_data(h.key, full_message=typed).signature
                ids.append(coupons_service.request_redeem(
                    alliance, s, merchant_id=acc.merchant_id, coupon_id=str(c),
                    order_id=f"rb-{i}", order_amount=1000, nonce=1, deadline=now + 3600,
                    signature="0x" + bytes(sig).hex()).id)
        runtime.outbox_worker(alliance).drain()
        with alliance.store.read_session() as s:
            txs = {op.tx_hash for i in ids if (op := outbox_repos.get_operation(s, i))}
        return [int(alliance.gateway.receipt(str(t))["gasUsed"]) for t in txs]

    numbered = list(enumerate(holders))
    redeem(numbered[:1])  # the period's clearing positions opened
    (alone,) = redeem(numbered[1:2])
    (batch,) = redeem(numbered[2:])
    print(f"redeemBatch of {lines} (cross-merchant, positions open): {batch:,} gas = "
          f"{batch / lines:,.0f} a line vs {alone:,} for one redemption alone = "
          f"{batch / lines / alone:.3f}x", flush=True)
    return alone, batch


def other_ops(alliance: Alliance) -> dict[str, int]:
    """Gas of every coupon operation besides batch grants and redemptions, printed next to
    the reference; gives them by name."""
    gas = measure_other_ops(alliance)
    print("other coupon operations (gas, reference = main before the redemption work):")
    for name, g in gas.items():
        ref = REFERENCE_GAS.get(name, 0)
        ratio = f"{g / ref:.3f}x" if ref else "-"
        print(f"  {name}: {g:,} vs reference {ref:,} = {ratio}")
    return gas


def measure_other_ops(alliance: Alliance) -> dict[str, int]:
    gw = alliance.gateway
    book = alliance.contracts.coupons
    assert book is not None
    ids, senders = [], []
    for sym in ("OI", "OA"):
        m = admit_merchant(alliance, name=f"Ops {sym}", symbol=sym, rate=1,
                           config=ProgramConfig())
        ids.append(m.merchant_id)
        senders.append(TransactionSender(gw, merchant_signing_key(alliance, m.merchant_id)))
    (issuer, acceptor), (iss_tx, acc_tx) = ids, senders
    out: dict[str, int] = {}

    def send(name: str | None, tx: TransactionSender, data: bytes) -> dict[str, object]:
        receipt = tx.transact(to=book.address, data=data, gas=5_000_000)
        if name:
            out[name] = int(receipt["gasUsed"])  # type: ignore[call-overload]
        return receipt

    terms = CampaignTerms(issuer=issuer, kind=CouponKind.FIXED_OFF, value=100,
                          budget=10**12, acceptors=(acceptor,))
    send("createCampaign (one acceptor)", iss_tx, book.encode("createCampaign",
                                                              terms.as_tuple()))
    cid = book.campaign_count()
    holder = Account.create()
    receipt = send("grant (one, _safeMint)", iss_tx, book.encode("grant", cid, holder.address))
    (coupon,) = [int(a["tokenId"]) for n, a, _ in book.decode_logs(receipt["logs"])  # type: ignore[arg-type]
                 if n == "Transfer"]
    send("pause", iss_tx, book.encode("setCampaignPaused", cid, True))
    send("resume", iss_tx, book.encode("setCampaignPaused", cid, False))
    now = int(gw.block("latest")["timestamp"])
    voucher = (cid, 7, now + 3600)
    sig = bytes(Account.unsafe_sign_hash(
        book.voucher_digest(campaign_id=cid, voucher_id=7, expires_at=now + 3600),
        merchant_signing_key(alliance, issuer)).signature)
    send("claimVoucher", iss_tx, book.encode("claimVoucher", voucher,
                                             Account.create().address, sig))
    send("cancelVoucher", iss_tx, book.encode("cancelVoucher", cid, 8))
    order = keccak(text="ops-1")
    digest = book.redeem_digest(holder=holder.address, coupon_id=coupon, acceptor=acceptor,
                                order_ref=order, order_amount=1000, nonce=1,
                                deadline=now + 3600)
    rsig = bytes(Account.unsafe_sign_hash(digest, holder.key).signature)
    send(None, acc_tx, book.encode("redeem", (coupon, acceptor, order, 1000, 1, now + 3600),
                                   rsig))
    send("rollback (cross-merchant)", acc_tx, book.encode("rollback", coupon, order))
    gw.rpc("anvil_setBalance", [holder.address, hex(10**20)])
    send("transferFrom", TransactionSender(gw, bytes(holder.key)),
         book.encode("transferFrom", holder.address, Account.create().address, coupon))
    return out


# ---------------------------------------------------------------------- API throughput


def _timed_posts(base: str, who: AdmittedMerchant, path: str, bodies: list[dict[str, Any]],
                 clients: int) -> tuple[float, list[str]]:
    """POST every body from ``clients`` concurrent clients; the time they took to be
    accepted and the operation ids."""
    ids: list[str] = []
    lock = threading.Lock()

    def loop(part: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            c = AllianceClient(http, who.key_id, who.secret)
            for b in part:
                r = c.post(path, b)
                assert r.status_code == 202, r.text
                with lock:
                    ids.append(r.json()["id"])

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(bodies[i::clients],))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, ids


def _rate(alliance: Alliance, n: int, post: Callable[[], tuple[float, list[str]]]) -> float:
    """Items per second from the first request until every operation is confirmed (how long
    the requests alone took to be accepted is printed too: the API's share)."""
    t0 = time.perf_counter()
    accepted_s, ids = post()
    _wait_confirmed(alliance, ids)
    total = time.perf_counter() - t0
    print(f"  {n:,} items: requests accepted in {accepted_s:.1f}s, all confirmed in "
          f"{total:.1f}s", flush=True)
    return n / total


def api_throughput(alliance: Alliance, *, grants: int, redeems: int,
                   batch: int = 500) -> dict[str, float]:
    """Coupons granted/s and redeemed/s through a real server, each next to points issued/s
    through the same server with the same batching (grants: batches of ``batch`` lines from
    4 clients; redemptions: one request each, as points' single issues, from 20 clients).
    Give the four rates by name."""
    issuer = admit_merchant(alliance, name="API issuer", symbol="AI", rate=1)
    acceptor = admit_merchant(alliance, name="API acceptor", symbol="AA", rate=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server, thread = _serve(alliance, port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            c = AllianceClient(http, issuer.key_id, issuer.secret)
            r = c.post("/v1/coupons/campaigns", {
                "kind": "fixed_off", "value": 100, "budget": 10**15,
                "acceptors": [acceptor.merchant_id]})
            assert c.wait_operation(r.json()["id"], 120)["status"] == "confirmed"
            deadline = time.monotonic() + 60
            while not (cs := c.get("/v1/coupons/campaigns").json()["campaigns"]):
                assert time.monotonic() < deadline, "campaign not indexed"
                time.sleep(0.05)
            cid = int(cs[-1]["campaign_id"])

        # ---- grants vs points issue, batches of `batch` from 4 clients
        members = [to_checksum_address(os.urandom(20)) for _ in range(grants)]
        chunks = [members[k:k + batch] for k in range(0, grants, batch)]
        granted = _rate(alliance, grants, lambda: _timed_posts(
            base, issuer, "/v1/coupons/grant",
            [{"campaign_id": cid, "members": ch} for ch in chunks], 4))
        issued = _rate(alliance, grants, lambda: _timed_posts(
            base, issuer, "/v1/points/issue-batch",
            [{"items": [{"member": m, "points": 5, "order_id": f"ref-{k}-{i}"}
                        for i, m in enumerate(ch)]} for k, ch in enumerate(chunks)], 4))
        print(f"API: {grants:,} coupons granted at {granted:,.0f}/s (grant batches of "
              f"{batch:,}, 4 clients) vs points issued at {issued:,.0f}/s the same way = "
              f"{granted / issued:.2f}x", flush=True)

        # ---- redemptions vs single points issues, 20 clients
        holders = [Account.create() for _ in range(redeems)]
        granted_ids: list[str] = []
        _, granted_ids = _timed_posts(base, issuer, "/v1/coupons/grant", [
            {"campaign_id": cid, "members": [h.address for h in holders]}], 1)
        _wait_confirmed(alliance, granted_ids)
        book = alliance.contracts.coupons
        assert book is not None
        coupons: dict[str, str] = {}
        with httpx.Client(base_url=base, timeout=120) as http:
            c = AllianceClient(http, issuer.key_id, issuer.secret)
            deadline = time.monotonic() + 120
            for h in holders:
                while not (mine := c.get(f"/v1/coupons/members/{h.address}").json()["coupons"]):
                    assert time.monotonic() < deadline, "grants not indexed"
                    time.sleep(0.05)
                coupons[h.address] = mine[0]["coupon_id"]
        now = int(alliance.gateway.block("latest")["timestamp"])
        bodies = []
        for i, h in enumerate(holders):
            oid = f"api-redeem-{i}"
            typed = redeem_coupon_typed_data(
                chain_id=alliance.gateway.chain_id, book=book.address,
                registry=alliance.contracts.deployment.registry, holder=h.address,
                coupon_id=int(coupons[h.address]), acceptor=acceptor.merchant_id,
                order_ref=order_ref(oid), order_amount=1000, nonce=i, deadline=now + 3600)
            sig = Account.sign_typed_data(h.key, full_message=typed).signature
            bodies.append({"coupon_id": coupons[h.address], "order_id": oid,
                           "order_amount": 1000, "nonce": i, "deadline": now + 3600,
                           "signature": "0x" + bytes(sig).hex()})
        redeemed = _rate(alliance, redeems, lambda: _timed_posts(
            base, acceptor, "/v1/coupons/redeem", bodies, 20))
        singles = _rate(alliance, redeems, lambda: _timed_posts(
            base, issuer, "/v1/points/issue",
            [{"member": to_checksum_address(os.urandom(20)), "points": 3,
              "order_id": f"ref-s-{i}"} for i in range(redeems)], 20))
        print(f"API: {redeems:,} coupons redeemed at {redeemed:,.0f}/s (one request each, "
              f"cleared across merchants, 20 clients) vs single points issues at "
              f"{singles:,.0f}/s the same way = {redeemed / singles:.2f}x", flush=True)
        return {"granted": granted, "issued": issued, "redeemed": redeemed,
                "single_issues": singles}
    finally:
        server.should_exit = True
        thread.join(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
