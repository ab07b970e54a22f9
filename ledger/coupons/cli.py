"""``alliance coupons ...``: campaigns, their live stats, a wallet's coupons, validate a
coupon for an order, and pause or resume a campaign (the issuer's emergency brake, sent
with its key by the operator's service)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..alliance import Alliance
from ..indexer.follower import Follower
from ..runtime import outbox_worker
from ..terminal import console, run
from . import service
from .projection import CouponsProjection

coupons_app = typer.Typer(help="Coupon campaigns, stats and coupons.", no_args_is_help=True)


def _catch_up(alliance: Alliance) -> None:
    """The CLI runs no indexer worker: read the coupon book up to its head first."""
    Follower(alliance, [CouponsProjection(alliance)]).catch_up()


@coupons_app.command("campaigns")
def coupons_campaigns(merchant: Annotated[int, typer.Option(help="Issuing merchant id")]
                      ) -> None:
    """A merchant's campaigns and their live stats."""

    def show(a: Alliance) -> None:
        _catch_up(a)
        table = Table("campaign", "kind", "value", "min spend", "paused", "granted",
                      "redeemed", "budget used", "budget")
        with a.store.read_session() as s:
            for c in service.list_campaigns(s, merchant_id=merchant):
                st = service.campaign_stats(s, merchant_id=merchant,
                                            campaign_id=c["campaign_id"])
                table.add_row(str(c["campaign_id"]), str(c["kind"]), str(c["value"]),
                              str(c["min_spend"]), "yes" if c["paused"] else "no",
                              str(st["granted"]), str(st["redeemed"]), str(st["budget_used"]),
                              str(st["budget"]))
        console.print(table)

    run(show)


@coupons_app.command("wallet")
def coupons_wallet(holder: str) -> None:
    """The coupons a wallet holds: valid, used or expired."""

    def show(a: Alliance) -> None:
        _catch_up(a)
        table = Table("coupon", "campaign", "status", "expires at", "used at merchant",
                      "discount")
        with a.store.read_session() as s:
            for c in service.member_coupons(a, s, holder=holder):
                table.add_row(c["coupon_id"], str(c["campaign_id"]), c["status"],
                              str(c["expires_at"] or "-"), str(c["used_at_merchant"] or "-"),
                              str(c["discount"] if c["discount"] is not None else "-"))
        console.print(table)

    run(show)


@coupons_app.command("validate")
def coupons_validate(coupon: str,
                     merchant: Annotated[int, typer.Option(help="Accepting merchant id")],
                     order: Annotated[str, typer.Option(help="Order id")],
                     amount: Annotated[int, typer.Option(help="Order amount")]) -> None:
    """Would the coupon apply to this order at this merchant now, and the discount."""

    def show(a: Alliance) -> None:
        with a.store.read_session() as s:
            v = service.validate(a, s, merchant_id=merchant, coupon_id=coupon, order_id=order,
                                 order_amount=amount)
        console.print(f"coupon {v.coupon_id}: "
                      + (f"applies, discount {v.discount}" if v.applies
                         else f"does not apply ({v.reason})"))

    run(show)


def _set_paused(campaign: int, merchant: int, paused: bool) -> None:
    def act(a: Alliance) -> None:
        with a.store.session() as s:
            op = service.request_set_paused(a, s, merchant_id=merchant, campaign_id=campaign,
                                            paused=paused)
        outbox_worker(a).drain()
        console.print(f"campaign {campaign} {'paused' if paused else 'resumed'} "
                      f"(operation {op.id})")

    run(act)


@coupons_app.command("pause")
def coupons_pause(campaign: int, merchant: Annotated[int, typer.Option(help="Issuer id")]
                  ) -> None:
    """Pause a campaign: no grants, claims or redemptions until resumed."""
    _set_paused(campaign, merchant, True)


@coupons_app.command("resume")
def coupons_resume(campaign: int, merchant: Annotated[int, typer.Option(help="Issuer id")]
                   ) -> None:
    """Resume a paused campaign."""
    _set_paused(campaign, merchant, False)


@coupons_app.command("revoke")
def coupons_revoke(coupon: str, merchant: Annotated[int, typer.Option(help="Issuer id")]
                   ) -> None:
    """Take back (burn) an unused coupon of one of the merchant's campaigns."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            op = service.request_revoke(a, s, merchant_id=merchant, coupon_id=coupon)
        outbox_worker(a).drain()
        console.print(f"coupon {coupon} revoked (operation {op.id})")

    run(act)
