"""``alliance offers ...``: a merchant's triggered-offer rules (list, create, disable), its
gift catalogue, and the birthday job run now (the service runs it every hour)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..alliance import Alliance
from ..terminal import console, run
from . import service

offers_app = typer.Typer(help="Triggered offers and gifts.", no_args_is_help=True)

MerchantOpt = Annotated[int, typer.Option("--merchant", help="Merchant id")]


@offers_app.command("rules")
def offers_rules(merchant: MerchantOpt) -> None:
    """A merchant's rules and how often each fired."""

    def show(a: Alliance) -> None:
        table = Table("rule", "kind", "campaign", "threshold", "active", "fired", "skipped",
                      "failed", "revoked", "kept")
        with a.store.read_session() as s:
            for r in service.list_rules(s, merchant_id=merchant):
                d = service.show_rule(s, merchant_id=merchant, rule_id=r["rule_id"])
                table.add_row(str(d["rule_id"]), d["kind"], str(d["campaign_id"]),
                              f"spend {d['min_spend']}" if d["min_spend"] is not None
                              else f"{d['min_points']} points" if d["min_points"] is not None
                              else "-",
                              "yes" if d["active"] else "no", str(d["fired"]),
                              str(d["skipped"]), str(d["failed"]), str(d["revoked"]),
                              str(d["kept"]))
        console.print(table)

    run(show)


@offers_app.command("add-rule")
def offers_add_rule(kind: Annotated[str, typer.Argument(help="purchase, birthday or referral")],
                    campaign: Annotated[int, typer.Argument(help="One of the merchant's "
                                                                    "campaigns")],
                    merchant: MerchantOpt,
                    min_points: Annotated[int | None, typer.Option(
                        help="purchase rules: least points an order's issue carries")] = None,
                    min_spend: Annotated[int | None, typer.Option(
                        help="purchase rules: least spend (minor units) of the order")] = None
                    ) -> None:
    """Create a rule of the merchant, active at once."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            r = service.create_rule(a, s, merchant_id=merchant, kind=kind, campaign_id=campaign,
                                    min_points=min_points, min_spend=min_spend)
        console.print(f"rule {r['rule_id']} ({r['kind']}, campaign {r['campaign_id']}) active")

    run(act)


@offers_app.command("disable-rule")
def offers_disable_rule(rule: int, merchant: MerchantOpt) -> None:
    """Disable a rule: it never fires again."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            service.disable_rule(s, merchant_id=merchant, rule_id=rule)
        console.print(f"rule {rule} disabled")

    run(act)


@offers_app.command("gifts")
def offers_gifts(merchant: MerchantOpt) -> None:
    """A merchant's gift catalogue and what is left of each gift."""

    def show(a: Alliance) -> None:
        table = Table("gift", "name", "points", "campaign", "stock", "left", "active")
        with a.store.read_session() as s:
            for g in service.list_gifts(s, merchant_id=merchant):
                table.add_row(str(g["gift_id"]), g["name"], str(g["points"]),
                              str(g["campaign_id"]), str(g["stock"]), str(g["left"]),
                              "yes" if g["active"] else "no")
        console.print(table)

    run(show)


@offers_app.command("birthdays")
def offers_birthdays() -> None:
    """Run the birthday job now (once per member per rule per year, however often it runs);
    the grants are queued for the outbox."""

    def act(a: Alliance) -> None:
        console.print(f"{service.run_birthday_offers(a)} birthday offer(s) fired")

    run(act)
