"""``alliance webhooks ...``: a merchant's webhook endpoints from the operator's terminal,
through the same service the API's ``/v1/webhooks`` calls (the same URL checks, bounds and
ownership: an endpoint of another merchant is "not found")."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..alliance import Alliance
from ..terminal import console, run
from ..types import MerchantId
from . import service
from .events import ALL, MAX_DELIVERIES_PAGE

webhooks_app = typer.Typer(help="Merchants' webhook endpoints and their delivery logs.",
                           no_args_is_help=True)

MerchantOpt = Annotated[int, typer.Option(help="The merchant the endpoint belongs to")]


@webhooks_app.command("add")
def webhooks_add(url: str, merchant: MerchantOpt,
                 event: Annotated[list[str] | None, typer.Option(
                     help=f"Event type (repeat for several; {ALL!r}: every type)")] = None
                 ) -> None:
    """Register an endpoint for the merchant's events of the given types (all by default);
    prints its signing secret, once."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            made = service.create_endpoint(a, s, merchant_id=MerchantId(merchant), url=url,
                                           events=event or [ALL])
        ep = made.endpoint
        console.print(f"webhook [bold]{ep.id}[/bold] for merchant {merchant}: {ep.url} "
                      f"({', '.join(ep.events)})")
        console.print(f"secret (shown once): {made.secret}", soft_wrap=True)

    run(act)


@webhooks_app.command("list")
def webhooks_list(merchant: MerchantOpt) -> None:
    """The merchant's endpoints (deleted ones left out): status, failures, pending."""

    def show(a: Alliance) -> None:
        table = Table("id", "url", "events", "status", "failures", "pending", "paused because")
        with a.store.read_session() as s:
            for ep in service.list_endpoints(s, merchant_id=MerchantId(merchant)):
                table.add_row(ep.id, ep.url, ", ".join(ep.events), ep.status, str(ep.failures),
                              str(ep.pending), ep.paused_reason or "")
        console.print(table)

    run(show)


@webhooks_app.command("disable")
def webhooks_disable(endpoint: str, merchant: MerchantOpt,
                     reason: Annotated[str, typer.Option(help="Shown to the merchant")] =
                     "disabled by the operator") -> None:
    """Pause an endpoint: nothing is sent until it is enabled again (its events queue)."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            ep = service.disable_endpoint(s, merchant_id=MerchantId(merchant),
                                          endpoint_id=endpoint, reason=reason)
        console.print(f"webhook {ep.id} {ep.status} ({ep.pending} pending)")

    run(act)


@webhooks_app.command("enable")
def webhooks_enable(endpoint: str, merchant: MerchantOpt) -> None:
    """Resume a disabled or paused endpoint, from its oldest undelivered event."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            ep = service.resume_endpoint(s, merchant_id=MerchantId(merchant),
                                         endpoint_id=endpoint)
        console.print(f"webhook {ep.id} {ep.status} ({ep.pending} pending)")

    run(act)


@webhooks_app.command("delete")
def webhooks_delete(endpoint: str, merchant: MerchantOpt) -> None:
    """Stop delivering to an endpoint for good (its log stays)."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            ep = service.delete_endpoint(s, merchant_id=MerchantId(merchant),
                                         endpoint_id=endpoint)
        console.print(f"webhook {ep.id} {ep.status}")

    run(act)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
        endpoint: str, merchant: MerchantOpt,
        after: Annotated[str | None, typer.Option(help="Start after this event id")] = None,
        limit: Annotated[int, typer.Option(min=1, max=MAX_DELIVERIES_PAGE,
                                           help="Lines at most")] = 100) -> None:
    """An endpoint's delivery log in event order."""

    def show(a: Alliance) -> None:
        with a.store.read_session() as s:
            page = service.deliveries(s, merchant_id=MerchantId(merchant),
                                      endpoint_id=endpoint, after=after, limit=limit)
        table = Table("event", "type", "block", "state", "attempts", "last", "delivered at",
                      "next at")
        for d in page.deliveries:
            last = d.last_error or (str(d.last_status) if d.last_status is not None else "")
            table.add_row(d.event_id, d.type, str(d.block), d.state, str(d.attempts), last,
                          str(d.delivered_at or ""), str(d.next_at or ""))
        console.print(table)
        if page.next_after:
            console.print(f"more: --after {page.next_after}", soft_wrap=True)

    run(show)


@webhooks_app.command("replay")
def webhooks_replay(endpoint: str, merchant: MerchantOpt,
                    from_event: Annotated[str, typer.Option(
                        "--from", help="The first event id to send again")]) -> None:
    """Queue an endpoint's events again from an event on, in order (delivered ones too)."""

    def act(a: Alliance) -> None:
        with a.store.session() as s:
            queued = service.replay(s, merchant_id=MerchantId(merchant), endpoint_id=endpoint,
                                    from_event_id=from_event)
        console.print(f"webhook {endpoint}: {queued} deliveries queued from {from_event}",
                      soft_wrap=True)

    run(act)
