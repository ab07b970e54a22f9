"""``alliance merchant ...``, ``alliance rate``, ``alliance admin-key`` and ``alliance admin ...``:
merchants, their rates and credentials, and the admin actions waiting in the timelock."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from ..alliance import Alliance
from ..chain.funding import ether
from ..errors import LedgerError
from ..governance import cancel, find, pending
from ..limits import merchant_id as merchant_id_of
from ..terminal import WIDE_TABLE, console, fail, open_alliance, print_credentials, run, say_pending
from .clients import ProgramConfig
from .service import (
    AdmittedMerchant,
    MerchantView,
    PendingAdmission,
    create_admin_credential,
    execute_action,
    fund_merchant,
    list_merchants,
    propose_admission,
    reinstate_merchant,
    set_payout,
    set_rate,
    suspend_merchant,
)

merchant_app = typer.Typer(help="Merchants of the alliance.", no_args_is_help=True)
admin_app = typer.Typer(help="Admin actions waiting in the timelock.", no_args_is_help=True)


@merchant_app.command("add")
def merchant_add(
    name: Annotated[str, typer.Argument(help="Merchant's trading name")],
    symbol: Annotated[str, typer.Option(help="Point symbol, 1-11 letters/digits")],
    rate: Annotated[int, typer.Option(help="Settlement units (fen) per point")],
    expiry_periods: Annotated[int, typer.Option(help="Periods points live; 0 = never")] = 0,
    period_days: Annotated[int, typer.Option(help="Days in one expiry period")] = 30,
    max_pending_days: Annotated[int, typer.Option(help="Longest refund window in days")] = 30,
    payout: Annotated[str | None, typer.Option(
        help="Address the clearing pays (default: a new one the service keeps)")] = None,
) -> None:
    """Admit a merchant with its point program, rate and payout address in one admin action;
    print its API credentials once (or the pending action, with a timelock delay)."""
    alliance = open_alliance()
    try:
        m = propose_admission(alliance, name=name, symbol=symbol, rate=rate, payout=payout,
                              config=ProgramConfig(period_days * 86400, expiry_periods,
                                                   max_pending_days))
    except LedgerError as exc:
        fail(exc)
        return
    finally:
        alliance.close()
    if isinstance(m, PendingAdmission):
        console.print(f"admission of {m.name} scheduled as admin action [bold]{m.action_id}"
                      f"[/bold], ready at {m.ready_at}: run `alliance admin execute "
                      f"{m.action_id[:12]}` then", soft_wrap=True)
        return
    print_credentials([(m.merchant_id, m.name, m.program, m.key_id, m.secret)])


@merchant_app.command("suspend")
def merchant_suspend(merchant_id: int) -> None:
    """Suspend a merchant at once (the operator's emergency brake): it can no longer issue,
    reverse or redeem."""
    _status_command(suspend_merchant, merchant_id)


@merchant_app.command("fund")
def merchant_fund(
    merchant_id: int,
    wei: Annotated[int | None, typer.Option(help="Wei to send; unset: up to "
                                            "ALLIANCE_RELAYER_FUNDING_WEI")] = None,
) -> None:
    """Send a merchant's relaying key gas money from the funder key (a plain transfer)."""

    def action(a: Alliance) -> None:
        balance = fund_merchant(a, merchant_id=merchant_id, wei=wei)
        console.print(f"merchant {merchant_id}'s relaying key holds {ether(balance)}")

    run(action)


@merchant_app.command("reinstate")
def merchant_reinstate(merchant_id: int) -> None:
    """Reinstate a suspended merchant (an admin action through the timelock)."""
    _status_command(reinstate_merchant, merchant_id)


@merchant_app.command("payout")
def merchant_payout(merchant_id: int, address: str) -> None:
    """Change where the clearing pays a merchant (an admin action through the timelock)."""

    def act(a: Alliance) -> None:
        v = set_payout(a, merchant_id=merchant_id_of(merchant_id), payout=address)
        console.print(f"merchant {v.merchant_id} is paid at {v.payout}")
        say_pending(a)

    run(act)


def _status_command(action: Callable[..., MerchantView], merchant_id: int) -> None:
    alliance = open_alliance()
    try:
        v = action(alliance, merchant_id=merchant_id)
        console.print(f"merchant {v.merchant_id} is now {v.status}")
        say_pending(alliance)
    except LedgerError as exc:
        fail(exc)
    finally:
        alliance.close()


@merchant_app.command("list")
def merchant_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON, for scripts")] = False,
) -> None:
    """List the merchants with status, program and rate."""
    alliance = open_alliance()
    try:
        merchants = list_merchants(alliance)
    finally:
        alliance.close()
    if as_json:
        typer.echo(json.dumps([{"merchant_id": m.merchant_id, "name": m.name,
                                "status": m.status, "rate": m.rate, "program": m.program,
                                "account": m.account} for m in merchants], indent=2))
        return
    if console.width >= WIDE_TABLE:
        table = Table("id", "name", "status", "rate (fen/pt)")
        table.add_column("program", no_wrap=True, min_width=42)
        for m in merchants:
            table.add_row(str(m.merchant_id), m.name, m.status, str(m.rate), m.program or "-")
        console.print(table)
        return
    # Too narrow for the table (an 80-column terminal, or a pipe): one block per merchant,
    # every address on a line of its own, never cut.
    for m in merchants:
        console.print(f"[bold]merchant {m.merchant_id}[/bold] {m.name}\n  status   {m.status}"
                      f"\n  rate     {m.rate} fen/pt\n  program  {m.program or '-'}",
                      soft_wrap=True)


def rate(merchant_id: int, fen_per_point: int) -> None:
    """Set a program's rate in settlement units (fen) per point."""
    alliance = open_alliance()
    try:
        v = set_rate(alliance, merchant_id=merchant_id_of(merchant_id), rate=fen_per_point)
        console.print(f"merchant {v.merchant_id} rate = {v.rate} fen/point")
        say_pending(alliance)
    except LedgerError as exc:
        fail(exc)
    finally:
        alliance.close()


def admin_key() -> None:
    """Create operator (admin API) credentials and print them once."""
    alliance = open_alliance()
    try:
        key_id, secret = create_admin_credential(alliance)
    finally:
        alliance.close()
    console.print(f"admin key id [bold]{key_id}[/bold]\nsecret      [bold]{secret}[/bold]")


@admin_app.command("pending")
def admin_pending() -> None:
    """List the admin actions scheduled in the timelock and when each may be executed."""

    def act(a: Alliance) -> None:
        now = int(a.gateway.block("latest")["timestamp"])
        table = Table("id", "action", "ready at", "ready")
        for x in pending(a):
            table.add_row(x.id[:18], x.summary, str(x.ready_at),
                          "yes" if x.ready_at <= now else f"in {x.ready_at - now} s")
        console.print(table)

    run(act)


@admin_app.command("execute")
def admin_execute(action_id: Annotated[str, typer.Argument(help="Action id (or a prefix)")]
                  ) -> None:
    """Execute a scheduled admin action once its delay has passed (and finish it in the
    store: an admission prints the merchant's credentials once)."""

    def act(a: Alliance) -> None:
        out = execute_action(a, action_id)
        if isinstance(out, AdmittedMerchant):
            print_credentials([(out.merchant_id, out.name, out.program, out.key_id,
                                 out.secret)])
        else:
            console.print(f"executed {action_id}")

    run(act)


@admin_app.command("cancel")
def admin_cancel(action_id: Annotated[str, typer.Argument(help="Action id (or a prefix)")]
                 ) -> None:
    """Cancel a scheduled admin action that was not executed."""

    def act(a: Alliance) -> None:
        action = find(a, action_id)
        cancel(a, action)
        console.print(f"cancelled {action.id}: {action.summary}")

    run(act)
