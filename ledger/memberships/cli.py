"""``alliance memberships ...``: issue and renew a merchant's membership cards (sent with its
key by the operator's service), a wallet's cards, tiers and a member's tier."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..alliance import Alliance
from ..indexer.follower import Follower
from ..points.projection import PointsProjection
from ..runtime import outbox_worker
from ..terminal import console, run
from . import service
from .projection import MembershipsProjection

memberships_app = typer.Typer(help="Membership cards and tiers.", no_args_is_help=True)

MerchantOpt = Annotated[int, typer.Option(help="Issuing merchant id")]


def _catch_up(alliance: Alliance) -> None:
    """The CLI runs no indexer worker: read cards and points up to the head first."""
    Follower(alliance, [MembershipsProjection(alliance), PointsProjection(alliance)]).catch_up()


@memberships_app.command("issue")
def memberships_issue(member: str, merchant: MerchantOpt,
                      payment: Annotated[str, typer.Option(help="Off-chain payment reference")],
                      tier: Annotated[int, typer.Option(help="Tier 1-255")] = 1,
                      days: Annotated[int, typer.Option(help="Valid for days")] = 365) -> None:
    """Issue a member the merchant's card, paid by an off-chain payment reference."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            op = service.request_issue_card(a, s, merchant_id=merchant, member=member,
                                            tier=tier, days=days, payment_ref=payment)
        outbox_worker(a).drain()
        console.print(f"card of merchant {merchant} for {member} (operation {op.id})")

    run(act)


@memberships_app.command("renew")
def memberships_renew(member: str, merchant: MerchantOpt,
                      payment: Annotated[str, typer.Option(help="Off-chain payment reference")],
                      days: Annotated[int, typer.Option(help="Days more")] = 365) -> None:
    """Renew a member's card of the merchant for more days."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            op = service.request_renew_card(a, s, merchant_id=merchant, member=member,
                                            days=days, payment_ref=payment)
        outbox_worker(a).drain()
        console.print(f"card of merchant {merchant} for {member} renewed (operation {op.id})")

    run(act)


@memberships_app.command("cards")
def memberships_cards(member: str) -> None:
    """A wallet's membership cards: merchant, tier, expiry, valid or expired."""

    def show(a: Alliance) -> None:
        _catch_up(a)
        table = Table("merchant", "tier", "expires at", "status")
        with a.store.read_session() as s:
            for c in service.member_cards(a, s, member=member):
                table.add_row(str(c.merchant_id or "alliance"), str(c.tier), str(c.expires_at),
                              str(c.status))
        console.print(table)

    run(show)


@memberships_app.command("tier")
def memberships_tier(member: str,
                     merchant: Annotated[int, typer.Option(help="Merchant (0: alliance)")] = 0
                     ) -> None:
    """A member's tier in a merchant's tiers (or the alliance-wide ones) now."""

    def show(a: Alliance) -> None:
        _catch_up(a)
        with a.store.read_session() as s:
            t = service.member_tier(a, s, merchant_id=merchant, member=member)
        console.print(f"{t.member}: tier {t.level} ({t.name or 'none'}), "
                      f"{t.points_in_window} points in the window, "
                      f"x{t.multiplier_bps / 10_000:g} points")

    run(show)
