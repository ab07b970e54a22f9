"""The ``alliance`` command: the operator's tool.

``alliance up`` brings everything up (chain, contracts, demo alliance, API); the other
commands do one thing each. Each capability has its commands in ``ledger/<capability>/cli.py``
(merchants and admin actions, clearing); the demo alliance in ``ledger/demo.py``; this module
puts them together with the chain, contracts and API commands.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn
from rich.table import Table

from .audit.cli import audit
from .audit.operator_cli import auditor_key, drift
from .chain import anvil
from .clearing.cli import clearing_app
from .contracts.compiler import compile_contracts
from .coupons.cli import coupons_app
from .demo import demo_app, demo_missing, seed_demo, show_demo
from .errors import LedgerError
from .items.cli import items_app
from .merchants.cli import admin_app, admin_key, merchant_app, rate
from .terminal import console, fail, open_alliance, settings

app = typer.Typer(help="Alliance Ledger: the alliance operator's command line.",
                  no_args_is_help=True)
chain_app = typer.Typer(help="The local anvil chain.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(admin_app, name="admin")
app.add_typer(clearing_app, name="clearing")
app.add_typer(coupons_app, name="coupons")
app.add_typer(merchant_app, name="merchant")
app.add_typer(demo_app, name="demo")
app.add_typer(items_app, name="items")
app.command("rate")(rate)
app.command("admin-key")(admin_key)
app.command("audit")(audit)
app.command("auditor-key")(auditor_key)
app.command("drift")(drift)


# ---------------------------------------------------------------------- chain


@chain_app.command("start")
def chain_start() -> None:
    """Start (or reuse) the local anvil chain with persistent state."""
    url = anvil.ensure_running(settings())
    console.print(f"chain running at [bold]{url}[/bold]")


@chain_app.command("stop")
def chain_stop() -> None:
    """Stop the local chain, saving its state."""
    anvil.stop(settings())
    console.print("chain stopped")


@chain_app.command("status")
def chain_status() -> None:
    """Say whether the local chain is running, and where."""
    st = anvil.status(settings())
    console.print(st)


# ---------------------------------------------------------------------- contracts


@app.command()
def compile() -> None:
    """Compile the contracts (cached; rebuilt only when a source changed)."""
    arts = compile_contracts(settings())
    table = Table("contract", "runtime bytes")
    for name, art in sorted(arts.items()):
        if art.deployed_bytecode:
            table.add_row(name, str(len(art.deployed_bytecode) // 2))
    console.print(table)


@app.command()
def deploy() -> None:
    """Deploy the alliance's contracts (or show the recorded deployment)."""
    try:
        alliance = open_alliance()
    except LedgerError as exc:
        fail(exc)
        return
    dep = alliance.contracts.deployment
    console.print(f"chain {dep.chain_id}: registry [bold]{dep.registry}[/bold], "
                  f"factory [bold]{dep.factory}[/bold]")
    alliance.close()


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
    seed: Annotated[bool, typer.Option(help="Seed the demo alliance if empty")] = True,
) -> None:
    """Bring everything up: chain, contracts, demo alliance, and the API with /docs."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    alliance = open_alliance()
    settings = alliance.settings
    dep = alliance.contracts.deployment
    # One fact a line, never wrapped: an operator copies these.
    console.print(f"chain     {dep.chain_id} at {alliance.gateway.url}\n"
                  f"registry  {dep.registry}", soft_wrap=True)
    if seed:
        created = demo_missing(alliance)
        show_demo(seed_demo(alliance), settings.data_dir, created=created)
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
