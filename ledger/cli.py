"""The ``alliance`` command: the operator's tool.

``alliance up`` brings everything up (chain, contracts, demo alliance, API); the other
commands do one thing each. Output is for people: rich tables, credentials printed once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from rich.table import Table

from .errors import LedgerError
from .settings import Settings, get_settings

if TYPE_CHECKING:
    from .alliance import Alliance
    from .clearing.service import PeriodView
    from .merchants.service import MerchantView

app = typer.Typer(help="Alliance Ledger: the alliance operator's command line.",
                  no_args_is_help=True)
chain_app = typer.Typer(help="The local anvil chain.", no_args_is_help=True)
merchant_app = typer.Typer(help="Merchants of the alliance.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo alliance.", no_args_is_help=True)
clearing_app = typer.Typer(help="Clearing and settlement between merchants.",
                           no_args_is_help=True)
admin_app = typer.Typer(help="Admin actions waiting in the timelock.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(admin_app, name="admin")
app.add_typer(clearing_app, name="clearing")
app.add_typer(merchant_app, name="merchant")
app.add_typer(demo_app, name="demo")

console = Console()
# The width a merchant table needs to show every column whole (a 42-character address).
WIDE_TABLE = 110

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


def _settings() -> Settings:
    return get_settings()


def _open() -> Alliance:
    from .alliance import Alliance

    return Alliance.open(_settings())


def _fail(exc: LedgerError) -> None:
    console.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(code=1)


# ---------------------------------------------------------------------- chain


@chain_app.command("start")
def chain_start() -> None:
    """Start (or reuse) the local anvil chain with persistent state."""
    from .chain import anvil

    url = anvil.ensure_running(_settings())
    console.print(f"chain running at [bold]{url}[/bold]")


@chain_app.command("stop")
def chain_stop() -> None:
    """Stop the local chain, saving its state."""
    from .chain import anvil

    anvil.stop(_settings())
    console.print("chain stopped")


@chain_app.command("status")
def chain_status() -> None:
    """Say whether the local chain is running, and where."""
    from .chain import anvil

    st = anvil.status(_settings())
    console.print(st)


# ---------------------------------------------------------------------- contracts


@app.command()
def compile() -> None:
    """Compile the contracts (cached; rebuilt only when a source changed)."""
    from .contracts.compiler import compile_contracts

    arts = compile_contracts(_settings())
    table = Table("contract", "runtime bytes")
    for name, art in sorted(arts.items()):
        if art.deployed_bytecode:
            table.add_row(name, str(len(art.deployed_bytecode) // 2))
    console.print(table)


@app.command()
def deploy() -> None:
    """Deploy the alliance's contracts (or show the recorded deployment)."""
    try:
        alliance = _open()
    except LedgerError as exc:
        _fail(exc)
        return
    dep = alliance.contracts.deployment
    console.print(f"chain {dep.chain_id}: registry [bold]{dep.registry}[/bold], "
                  f"factory [bold]{dep.factory}[/bold]")
    alliance.close()


# ---------------------------------------------------------------------- merchants


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
    from .merchants.clients import ProgramConfig
    from .merchants.service import PendingAdmission, propose_admission

    alliance = _open()
    try:
        m = propose_admission(alliance, name=name, symbol=symbol, rate=rate, payout=payout,
                              config=ProgramConfig(period_days * 86400, expiry_periods,
                                                   max_pending_days))
    except LedgerError as exc:
        _fail(exc)
        return
    finally:
        alliance.close()
    if isinstance(m, PendingAdmission):
        console.print(f"admission of {m.name} scheduled as admin action [bold]{m.action_id}"
                      f"[/bold], ready at {m.ready_at}: run `alliance admin execute "
                      f"{m.action_id[:12]}` then", soft_wrap=True)
        return
    _print_credentials([(m.merchant_id, m.name, m.program, m.key_id, m.secret)])


@merchant_app.command("suspend")
def merchant_suspend(merchant_id: int) -> None:
    """Suspend a merchant at once (the operator's emergency brake): it can no longer issue,
    reverse or redeem."""
    from .merchants.service import suspend_merchant

    _status_command(suspend_merchant, merchant_id)


@merchant_app.command("reinstate")
def merchant_reinstate(merchant_id: int) -> None:
    """Reinstate a suspended merchant (an admin action through the timelock)."""
    from .merchants.service import reinstate_merchant

    _status_command(reinstate_merchant, merchant_id)


@merchant_app.command("payout")
def merchant_payout(merchant_id: int, address: str) -> None:
    """Change where the clearing pays a merchant (an admin action through the timelock)."""
    from .merchants.service import set_payout

    def act(a: Alliance) -> None:
        v = set_payout(a, merchant_id=merchant_id, payout=address)
        console.print(f"merchant {v.merchant_id} is paid at {v.payout}")
        _say_pending(a)

    _run(act)


def _status_command(action: Callable[..., MerchantView], merchant_id: int) -> None:
    alliance = _open()
    try:
        v = action(alliance, merchant_id=merchant_id)
        console.print(f"merchant {v.merchant_id} is now {v.status}")
        _say_pending(alliance)
    except LedgerError as exc:
        _fail(exc)
    finally:
        alliance.close()


def _say_pending(alliance: Alliance) -> None:
    from .governance import pending

    waiting = pending(alliance)
    if waiting:
        console.print(f"{len(waiting)} admin action(s) waiting in the timelock: see "
                      "`alliance admin pending`")


@merchant_app.command("list")
def merchant_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON, for scripts")] = False,
) -> None:
    """List the merchants with status, program and rate."""
    from .merchants.service import list_merchants

    alliance = _open()
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


@app.command("rate")
def rate(merchant_id: int, fen_per_point: int) -> None:
    """Set a program's rate in settlement units (fen) per point."""
    from .merchants.service import set_rate

    alliance = _open()
    try:
        v = set_rate(alliance, merchant_id=merchant_id, rate=fen_per_point)
        console.print(f"merchant {v.merchant_id} rate = {v.rate} fen/point")
        _say_pending(alliance)
    except LedgerError as exc:
        _fail(exc)
    finally:
        alliance.close()


@app.command("admin-key")
def admin_key() -> None:
    """Create operator (admin API) credentials and print them once."""
    from .merchants.service import create_admin_credential

    alliance = _open()
    try:
        key_id, secret = create_admin_credential(alliance)
    finally:
        alliance.close()
    console.print(f"admin key id [bold]{key_id}[/bold]\nsecret      [bold]{secret}[/bold]")


# ---------------------------------------------------------------------- clearing


def _run(action: Callable[[Alliance], None]) -> None:
    alliance = _open()
    try:
        action(alliance)
    except LedgerError as exc:
        _fail(exc)
    finally:
        alliance.close()


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
    from .clearing.service import period_view

    _run(lambda a: _period_table(period_view(a, period)))


@clearing_app.command("close")
def clearing_close() -> None:
    """Close the open period: each merchant's net is recorded on chain."""
    from .clearing.service import close_period

    _run(lambda a: _period_table(close_period(a)))


@clearing_app.command("settle")
def clearing_settle(period: int) -> None:
    """Pay every creditor of a closed period what it can claim from escrow now (pro rata
    of what debtors paid), to its payout address."""
    from .clearing.service import settle

    _run(lambda a: _period_table(settle(a, period=period)))


@clearing_app.command("sweep")
def clearing_sweep(to: str) -> None:
    """Send settlement tokens the clearing holds beyond escrow (sent by plain transfer) to TO."""
    from .clearing.service import sweep_stray

    _run(lambda a: console.print(f"swept {sweep_stray(a, to=to)} settlement units to {to}"))


@clearing_app.command("confirm-for")
def clearing_confirm_for(period: int, debtor: int, creditor: int, amount: int) -> None:
    """Record that DEBTOR paid the suspended CREDITOR AMOUNT off chain for PERIOD."""
    from .clearing.service import confirm_for_suspended

    def act(a: Alliance) -> None:
        pos = confirm_for_suspended(a, period=period, debtor=debtor, creditor=creditor,
                                    amount=amount)
        console.print(f"merchant {creditor} is still owed {pos.outstanding} for period "
                      f"{period}")

    _run(act)


@clearing_app.command("anchor")
def clearing_anchor(period: int) -> None:
    """Anchor every merchant's statement hash of a closed period."""
    from .clearing.statements import anchor_statements

    def act(a: Alliance) -> None:
        for st in anchor_statements(a, period=period):
            console.print(f"merchant {st.document['merchant_id']}: {st.hash}")

    _run(act)


@clearing_app.command("statement")
def clearing_statement(
        period: int, merchant_id: int,
        csv_out: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False
) -> None:
    """Print a merchant's statement for a period (JSON, or CSV with --csv)."""
    from .clearing.statements import statement

    def act(a: Alliance) -> None:
        st = statement(a, period=period, merchant_id=merchant_id)
        if csv_out:
            typer.echo(st.to_csv(), nl=False)
        else:
            typer.echo(json.dumps({"hash": st.hash, "anchored_hash": st.anchored_hash,
                                   "statement": st.document}, indent=2))

    _run(act)


@clearing_app.command("caps")
def clearing_caps(merchant_id: int, liability_cap: int, foreign_cap: int) -> None:
    """Set a merchant's liability cap and per-period foreign cap (settlement units; 0: none)."""
    from .clearing.service import set_caps

    def act(a: Alliance) -> None:
        set_caps(a, merchant_id=merchant_id, liability_cap=liability_cap,
                 foreign_cap=foreign_cap)
        console.print(f"merchant {merchant_id}: {a.contracts.registry.terms_of(merchant_id)}")
        _say_pending(a)

    _run(act)


@clearing_app.command("accept")
def clearing_accept(acceptor: int, program_merchant: int,
                    refuse: Annotated[bool, typer.Option(help="Refuse instead")] = False
                    ) -> None:
    """Let ACCEPTOR take PROGRAM_MERCHANT's points (or, with --refuse, stop it)."""
    from .clearing.service import set_acceptance

    def act(a: Alliance) -> None:
        done = set_acceptance(a, acceptor=acceptor, program_merchant=program_merchant,
                              accepted=not refuse)
        console.print(f"merchant {acceptor} {'refuses' if refuse else 'accepts'} the points "
                      f"of merchant {program_merchant}{'' if done else ' (scheduled)'}")
        _say_pending(a)

    _run(act)


@clearing_app.command("refund")
def clearing_refund(program_merchant: int, acceptor: int, order_id: str, points: int) -> None:
    """Refund, as the operator, a redemption of PROGRAM_MERCHANT's points that ACCEPTOR took
    for its order ORDER_ID (when ACCEPTOR has been suspended since)."""
    from .clearing.service import operator_refund

    def act(a: Alliance) -> None:
        operator_refund(a, program_merchant=program_merchant, acceptor=acceptor,
                        order_id=order_id, points=points)
        console.print(f"refunded {points} points of order {order_id} at merchant {acceptor}")

    _run(act)


@clearing_app.command("mint")
def clearing_mint(merchant_id: int, amount: int) -> None:
    """Mint settlement tokens to a merchant against cash received into escrow."""
    from .clearing.service import mint_settlement_tokens

    def act(a: Alliance) -> None:
        bal = mint_settlement_tokens(a, merchant_id=merchant_id, amount=amount)
        console.print(f"merchant {merchant_id} holds {bal} settlement units")

    _run(act)


# ---------------------------------------------------------------------- admin (timelock)


@admin_app.command("pending")
def admin_pending() -> None:
    """List the admin actions scheduled in the timelock and when each may be executed."""
    from .governance import pending

    def act(a: Alliance) -> None:
        now = int(a.gateway.block("latest")["timestamp"])
        table = Table("id", "action", "ready at", "ready")
        for x in pending(a):
            table.add_row(x.id[:18], x.summary, str(x.ready_at),
                          "yes" if x.ready_at <= now else f"in {x.ready_at - now} s")
        console.print(table)

    _run(act)


@admin_app.command("execute")
def admin_execute(action_id: Annotated[str, typer.Argument(help="Action id (or a prefix)")]
                  ) -> None:
    """Execute a scheduled admin action once its delay has passed (and finish it in the
    store: an admission prints the merchant's credentials once)."""
    from .merchants.service import AdmittedMerchant, execute_action

    def act(a: Alliance) -> None:
        out = execute_action(a, action_id)
        if isinstance(out, AdmittedMerchant):
            _print_credentials([(out.merchant_id, out.name, out.program, out.key_id,
                                 out.secret)])
        else:
            console.print(f"executed {action_id}")

    _run(act)


@admin_app.command("cancel")
def admin_cancel(action_id: Annotated[str, typer.Argument(help="Action id (or a prefix)")]
                 ) -> None:
    """Cancel a scheduled admin action that was not executed."""
    from .governance import cancel, find

    def act(a: Alliance) -> None:
        action = find(a, action_id)
        cancel(a, action)
        console.print(f"cancelled {action.id}: {action.summary}")

    _run(act)


# ---------------------------------------------------------------------- demo and up


def _print_credentials(rows: list[tuple[int, str, str, str, str]]) -> None:
    # Plain lines, never a table: a secret must not be cut to fit a narrow terminal.
    for merchant_id, name, program, key_id, secret in rows:
        console.print(f"[bold]merchant {merchant_id}[/bold] {name}\n"
                      f"  program  {program}\n  key id   {key_id}\n"
                      f"  secret   {secret}   (shown once)", soft_wrap=True)


def seed_demo(alliance: Alliance) -> dict[str, object]:
    """Admit the three demo merchants and give the demo members some points."""
    from .merchants.clients import ProgramConfig
    from .merchants.service import admit_merchant, create_admin_credential, list_merchants
    from .outbox.worker import OutboxWorker
    from .points.service import IssueLine, request_issue_batch

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
        OutboxWorker(alliance).drain()
        wallet = _demo_cross_merchant(alliance, merchants)
        progress.advance(task)
    admin_id, admin_secret = create_admin_credential(alliance)
    creds: dict[str, object] = {"merchants": merchants,
                                "admin": {"key_id": admin_id, "secret": admin_secret},
                                "demo_wallet": wallet}
    path.write_text(json.dumps(creds, indent=2))
    os.chmod(path, 0o600)
    return creds


def _demo_cross_merchant(alliance: Alliance, merchants: list[dict[str, object]]
                         ) -> dict[str, str]:
    """A demo wallet member earns at the department store, spends some of those points at the
    cafe and converts some into cinema points: the clearing shows who owes whom. The wallet's
    key goes into the demo credentials file (a local demo chain only), so it can sign more."""
    import time

    from eth_account import Account

    from .outbox.worker import OutboxWorker
    from .points.service import (
        IssueLine,
        order_ref,
        request_convert,
        request_issue_batch,
        request_redeem,
    )
    from .signing import convert_typed_data, redeem_typed_data

    store, cinema, cafe = (int(str(m["merchant_id"])) for m in merchants)
    program = str(merchants[0]["program"])
    wallet = Account.create()
    chain_id = alliance.gateway.chain_id
    deadline = int(time.time()) + 3600
    with alliance.store.session() as s:
        request_issue_batch(alliance, s, merchant_id=store, items=[
            IssueLine(points=1000, order_id="demo-GPDS-wallet", member=wallet.address)])
    OutboxWorker(alliance).drain()
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
    OutboxWorker(alliance).drain()
    with alliance.store.session() as s:
        request_convert(alliance, s, merchant_id=cinema, member=wallet.address,
                        from_merchant_id=store, points=200, min_out=1,
                        order_id="demo-STAR-conv-1", nonce=1, deadline=deadline,
                        signature=_sign_typed(wallet.key, convert))
    OutboxWorker(alliance).drain()
    return {"address": wallet.address, "private_key": "0x" + bytes(wallet.key).hex()}


def _sign_typed(key: bytes, typed: dict[str, object]) -> str:
    from eth_account import Account

    return "0x" + bytes(Account.sign_typed_data(key, full_message=typed).signature).hex()


@demo_app.command("seed")
def demo_seed() -> None:
    """Admit the demo merchants (department store, cinema, cafe) and seed member points."""
    alliance = _open()
    try:
        created = _demo_missing(alliance)
        creds = seed_demo(alliance)
    finally:
        alliance.close()
    _show_demo(creds, alliance.settings.data_dir, created=created)


def _demo_missing(alliance: Alliance) -> bool:
    """Whether the demo alliance is still to be seeded (its secrets are then new)."""
    from .merchants.service import list_merchants

    return not list_merchants(alliance)


def _show_demo(creds: dict[str, object], data_dir: Path, *, created: bool) -> None:
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
    _print_credentials([(m["merchant_id"], m["name"], m["program"], m["key_id"], m["secret"])
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


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
    seed: Annotated[bool, typer.Option(help="Seed the demo alliance if empty")] = True,
) -> None:
    """Bring everything up: chain, contracts, demo alliance, and the API with /docs."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    alliance = _open()
    settings = alliance.settings
    dep = alliance.contracts.deployment
    # One fact a line, never wrapped: an operator copies these.
    console.print(f"chain     {dep.chain_id} at {alliance.gateway.url}\n"
                  f"registry  {dep.registry}", soft_wrap=True)
    if seed:
        created = _demo_missing(alliance)
        _show_demo(seed_demo(alliance), settings.data_dir, created=created)
    bind_host = host or settings.api_host
    bind_port = port or settings.api_port
    alliance.close()
    console.print(f"API on [bold]http://{bind_host}:{bind_port}[/bold]  "
                  f"(docs: http://{bind_host}:{bind_port}/docs)", soft_wrap=True)
    # The API is named by import string: the ledger package never imports the api package.
    uvicorn.run("api.app:create_default_app", factory=True, host=bind_host, port=bind_port,
                log_level="info")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
) -> None:
    """Run the API only (chain and deployment must be reachable)."""
    up(host=host, port=port, seed=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
