"""``alliance clearing ...``: positions, period close, settlement, statements, caps."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ..alliance import Alliance
from ..limits import merchant_id as merchant_id_of
from ..terminal import console, run, say_pending
from .service import (
    PeriodView,
    close_period,
    confirm_for_suspended,
    mint_settlement_tokens,
    operator_refund,
    period_view,
    set_acceptance,
    set_caps,
    settle,
    sweep_stray,
)
from .statements import anchor_statements, catch_up, statement

clearing_app = typer.Typer(help="Clearing and settlement between merchants.",
                           no_args_is_help=True)


def _period_table(view: PeriodView) -> None:
    state = "open" if view.closed_at is None else f"closed at {view.closed_at}"
    console.print(f"period {view.period} ({state}); owed {view.total_owed}, received "
                  f"{view.total_received}, escrow {view.escrow}")
    table = Table("merchant", "net", "foreign accepted", "paid", "received", "outstanding")
    for p in view.positions:
        table.add_row(str(p.merchant_id), str(p.net), str(p.foreign_accepted), str(p.paid),
                      str(p.received), str(p.outstanding))
    console.print(table)


@clearing_app.command("positions")
def clearing_positions(
        period: Annotated[int | None, typer.Option(help="Period (default: the open one)")] = None
) -> None:
    """Every merchant's net in a period (settlement units; positive = owed to it)."""
    run(lambda a: _period_table(period_view(a, period)))


@clearing_app.command("close")
def clearing_close() -> None:
    """Close the open period: each merchant's net is recorded on chain."""
    run(lambda a: _period_table(close_period(a)))


@clearing_app.command("settle")
def clearing_settle(period: int) -> None:
    """Pay every creditor of a closed period what it can claim from escrow now (pro rata
    of what debtors paid), to its payout address."""
    run(lambda a: _period_table(settle(a, period=period)))


@clearing_app.command("sweep")
def clearing_sweep(to: str) -> None:
    """Send settlement tokens the clearing holds beyond escrow (sent by plain transfer) to TO."""
    run(lambda a: console.print(f"swept {sweep_stray(a, to=to)} settlement units to {to}"))


@clearing_app.command("confirm-for")
def clearing_confirm_for(period: int, debtor: int, creditor: int, amount: int) -> None:
    """Record that DEBTOR paid the suspended CREDITOR AMOUNT off chain for PERIOD."""

    def act(a: Alliance) -> None:
        pos = confirm_for_suspended(a, period=period, debtor=merchant_id_of(debtor, "debtor"),
                                    creditor=merchant_id_of(creditor, "creditor"),
                                    amount=amount)
        console.print(f"merchant {creditor} is still owed {pos.outstanding} for period "
                      f"{period}")

    run(act)


@clearing_app.command("anchor")
def clearing_anchor(period: int) -> None:
    """Anchor every merchant's statement hash of a closed period."""

    def act(a: Alliance) -> None:
        for st in anchor_statements(a, period=period):
            console.print(f"merchant {st.document['merchant_id']}: {st.hash}")

    run(act)


@clearing_app.command("statement")
def clearing_statement(
        period: int, merchant_id: int,
        csv_out: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False
) -> None:
    """Print a merchant's statement for a period (JSON, or CSV with --csv)."""

    def act(a: Alliance) -> None:
        catch_up(a)  # the CLI runs no indexer worker: read the chain up to its head first
        st = statement(a, period=period, merchant_id=merchant_id_of(merchant_id))
        if csv_out:
            typer.echo(st.to_csv(), nl=False)
        else:
            typer.echo(json.dumps({"hash": st.hash, "anchored_hash": st.anchored_hash,
                                   "statement": st.document}, indent=2))

    run(act)


@clearing_app.command("caps")
def clearing_caps(merchant_id: int, liability_cap: int, foreign_cap: int) -> None:
    """Set a merchant's liability cap and per-period foreign cap (settlement units; 0: none)."""

    def act(a: Alliance) -> None:
        set_caps(a, merchant_id=merchant_id_of(merchant_id), liability_cap=liability_cap,
                 foreign_cap=foreign_cap)
        console.print(f"merchant {merchant_id}: {a.contracts.registry.terms_of(merchant_id)}")
        say_pending(a)

    run(act)


@clearing_app.command("accept")
def clearing_accept(acceptor: int, program_merchant: int,
                    refuse: Annotated[bool, typer.Option(help="Refuse instead")] = False
                    ) -> None:
    """Let ACCEPTOR take PROGRAM_MERCHANT's points (or, with --refuse, stop it)."""

    def act(a: Alliance) -> None:
        done = set_acceptance(a, acceptor=merchant_id_of(acceptor, "acceptor"),
                              program_merchant=merchant_id_of(program_merchant, "program_merchant"),
                              accepted=not refuse)
        console.print(f"merchant {acceptor} {'refuses' if refuse else 'accepts'} the points "
                      f"of merchant {program_merchant}{'' if done else ' (scheduled)'}")
        say_pending(a)

    run(act)


@clearing_app.command("refund")
def clearing_refund(program_merchant: int, acceptor: int, order_id: str, points: int) -> None:
    """Refund, as the operator, a redemption of PROGRAM_MERCHANT's points that ACCEPTOR took
    for its order ORDER_ID (when ACCEPTOR has been suspended since)."""

    def act(a: Alliance) -> None:
        operator_refund(a, program_merchant=merchant_id_of(program_merchant, "program_merchant"),
                        acceptor=merchant_id_of(acceptor, "acceptor"),
                        order_id=order_id, points=points)
        console.print(f"refunded {points} points of order {order_id} at merchant {acceptor}")

    run(act)


@clearing_app.command("mint")
def clearing_mint(merchant_id: int, amount: int) -> None:
    """Mint settlement tokens to a merchant against cash received into escrow."""

    def act(a: Alliance) -> None:
        bal = mint_settlement_tokens(a, merchant_id=merchant_id_of(merchant_id), amount=amount)
        console.print(f"merchant {merchant_id} holds {bal} settlement units")

    run(act)
