"""The demo alliance: a department store, a cinema and a cafe, five members with points, and a
wallet member who earned at the store, spent at the cafe and converted into cinema points.

For a local dev chain only (the demo wallet's key is written to the data directory).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from eth_account import Account
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from .alliance import Alliance
from .coupons.demo import seed_demo_coupons
from .items.demo import seed_items_demo
from .memberships.demo import seed_demo_memberships
from .merchants.clients import ProgramConfig
from .merchants.service import admit_merchant, create_admin_credential, list_merchants
from .offers.demo import seed_demo_offers
from .points.reads import chain_now
from .points.service import (
    IssueLine,
    order_ref,
    request_convert,
    request_issue_batch,
    request_redeem,
)
from .runtime import outbox_worker
from .signing import convert_typed_data, redeem_typed_data
from .terminal import console, open_alliance, print_credentials
from .types import MerchantId

demo_app = typer.Typer(help="The demo alliance.", no_args_is_help=True)

DEMO_MERCHANTS = [
    # name, symbol, fen per point, expiry periods (of 30 days), refund-window days
    ("Grand Plaza Department Store", "GPDS", 1, 12, 7),
    # Expiring like the store's: store points converted into cinema points keep their expiry,
    # which a program whose points never expire cannot (PointsConversionOutlivesSource).
    ("Starlight Cinema", "STAR", 5, 12, 0),
    ("Corner Cafe", "CAFE", 2, 6, 0),
]
DEMO_MEMBERS = ["demo-member-001", "demo-member-002", "demo-member-003", "demo-member-004",
                "demo-member-005"]


def seed_demo(alliance: Alliance) -> dict[str, object]:
    """Admit the three demo merchants and give the demo members some points."""
    path = alliance.settings.data_dir / "demo-credentials.json"
    if list_merchants(alliance):
        if path.exists():
            return dict(json.loads(path.read_text()))
        return {}
    merchants = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TaskProgressColumn(), console=console, transient=True) as progress:
        task = progress.add_task("seeding the demo alliance", total=len(DEMO_MERCHANTS) + 1)
        for i, (name, symbol, rate, expiry, pending) in enumerate(DEMO_MERCHANTS):
            progress.update(task, description=f"admitting {name}")
            m = admit_merchant(alliance, name=name, symbol=symbol, rate=rate,
                               config=ProgramConfig(30 * 86400, expiry, max(pending, 1)))
            merchants.append({"merchant_id": m.merchant_id, "name": m.name,
                              "program": m.program, "key_id": m.key_id, "secret": m.secret})
            with alliance.store.session() as s:
                lines = [IssueLine(points=100 * (j + 1) * (i + 1),
                                   order_id=f"demo-{symbol}-{j}", member_id=member)
                         for j, member in enumerate(DEMO_MEMBERS)]
                request_issue_batch(alliance, s, merchant_id=m.merchant_id, items=lines)
            progress.advance(task)
        progress.update(task, description="issuing demo members' points")
        outbox_worker(alliance).drain()
        wallet = _demo_cross_merchant(alliance, merchants)
        progress.update(task, description="registering the demo brand's items")
        demo_items = seed_items_demo(alliance, brand_id=int(str(merchants[0]["merchant_id"])),
                                     shop_id=int(str(merchants[2]["merchant_id"])))
        seed_demo_coupons(alliance, outbox_worker(alliance), store=int(str(
            merchants[0]["merchant_id"])), cafe=int(str(merchants[2]["merchant_id"])),
            member_ids=DEMO_MEMBERS, wallet_key=bytes.fromhex(wallet["private_key"][2:]))
        demo_offers = seed_demo_offers(alliance, outbox_worker(alliance), store=int(str(
            merchants[0]["merchant_id"])), program=str(merchants[0]["program"]),
            wallet_key=bytes.fromhex(wallet["private_key"][2:]))
        demo_memberships = seed_demo_memberships(
            alliance, outbox_worker(alliance), store=int(str(merchants[0]["merchant_id"])),
            wallet_key=bytes.fromhex(wallet["private_key"][2:]))
        progress.advance(task)
    admin_id, admin_secret = create_admin_credential(alliance)
    creds: dict[str, object] = {"merchants": merchants,
                                "admin": {"key_id": admin_id, "secret": admin_secret},
                                "demo_wallet": wallet, "items": demo_items,
                                "offers": demo_offers, "memberships": demo_memberships}
    path.write_text(json.dumps(creds, indent=2))
    os.chmod(path, 0o600)
    return creds


def _demo_cross_merchant(alliance: Alliance, merchants: list[dict[str, object]]
                         ) -> dict[str, str]:
    """A demo wallet member earns at the department store, spends some of those points at the
    cafe and converts some into cinema points: the clearing shows who owes whom. The wallet's
    key goes into the demo credentials file (a local demo chain only), so it can sign more."""


    store, cinema, cafe = (MerchantId(int(str(m["merchant_id"]))) for m in merchants)
    program = str(merchants[0]["program"])
    wallet = Account.create()
    chain_id = alliance.gateway.chain_id
    deadline = chain_now(alliance) + 3600  # the chain's clock, which a dev chain may have moved
    with alliance.store.session() as s:
        request_issue_batch(alliance, s, merchant_id=store, items=[
            IssueLine(points=1000, order_id="demo-GPDS-wallet", member=wallet.address)])
    outbox_worker(alliance).drain()
    registry = alliance.contracts.registry.address
    redeem = redeem_typed_data(chain_id=chain_id, program=program, registry=registry,
                               member=wallet.address,
                               amount=120, merchant_id=cafe, order_ref=order_ref("demo-CAFE-1"),
                               nonce=0, deadline=deadline)
    convert = convert_typed_data(chain_id=chain_id, program=program, registry=registry,
                                 member=wallet.address,
                                 amount=200, to_merchant_id=cinema, min_out=1,
                                 order_ref=order_ref("demo-STAR-conv-1"), nonce=1,
                                 deadline=deadline)
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=cafe, member=wallet.address, points=120,
                       order_id="demo-CAFE-1", nonce=0, deadline=deadline,
                       signature=_sign_typed(wallet.key, redeem), program_merchant_id=store)
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_convert(alliance, s, merchant_id=cinema, member=wallet.address,
                        from_merchant_id=store, points=200, min_out=1,
                        order_id="demo-STAR-conv-1", nonce=1, deadline=deadline,
                        signature=_sign_typed(wallet.key, convert))
    outbox_worker(alliance).drain()
    return {"address": wallet.address, "private_key": "0x" + bytes(wallet.key).hex()}


def _sign_typed(key: bytes, typed: dict[str, object]) -> str:

    return "0x" + bytes(Account.sign_typed_data(key, full_message=typed).signature).hex()


@demo_app.command("seed")
def demo_seed() -> None:
    """Admit the demo merchants (department store, cinema, cafe) and seed member points."""
    alliance = open_alliance()
    try:
        created = demo_missing(alliance)
        creds = seed_demo(alliance)
    finally:
        alliance.close()
    show_demo(creds, alliance.settings.data_dir, created=created)


def demo_missing(alliance: Alliance) -> bool:
    """Whether the demo alliance is still to be seeded (its secrets are then new)."""
    return not list_merchants(alliance)


def show_demo(creds: dict[str, object], data_dir: Path, *, created: bool) -> None:
    """The demo alliance; its secrets only when ``created`` (this run made them)."""
    merchants = creds.get("merchants") or []
    assert isinstance(merchants, list)
    if not created:
        for m in merchants:
            console.print(f"[bold]merchant {m['merchant_id']}[/bold] {m['name']}\n"
                          f"  program  {m['program']}\n  key id   {m['key_id']}",
                          soft_wrap=True)
        console.print(f"demo alliance already seeded: its secrets were shown when created and "
                      f"are kept in {data_dir / 'demo-credentials.json'} (mode 600)",
                      soft_wrap=True)
        return
    print_credentials([(m["merchant_id"], m["name"], m["program"], m["key_id"], m["secret"])
                        for m in merchants])
    admin = creds.get("admin")
    if isinstance(admin, dict):
        console.print(f"[bold]operator[/bold]\n  key id   {admin['key_id']}\n"
                      f"  secret   {admin['secret']}", soft_wrap=True)
    wallet = creds.get("demo_wallet")
    if isinstance(wallet, dict):
        console.print(f"[bold]demo wallet member[/bold] {wallet['address']}: earned at the "
                      "store, spent at the cafe, converted into cinema points (see `alliance "
                      "clearing positions`)", soft_wrap=True)
    console.print(f"(kept in {data_dir / 'demo-credentials.json'}, mode 600)")
