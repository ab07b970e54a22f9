"""The ``alliance`` command: the operator's tool.

``alliance up`` brings everything up (chain, contracts, demo alliance, API); the other
commands do one thing each. Each capability has its commands in ``ledger/<capability>/cli.py``
(merchants and admin actions, clearing); the demo alliance in ``ledger/demo.py``; this module
puts them together with the chain, contracts and API commands.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Annotated, Any

import typer
import uvicorn
from prometheus_client import start_http_server
from rich.table import Table

from . import indexer_main
from .audit.cli import audit
from .audit.operator_cli import auditor_key, drift
from .chain import anvil
from .clearing.cli import clearing_app
from .contracts.compiler import compile_contracts
from .coupons.cli import coupons_app
from .demo import demo_app, demo_missing, seed_demo, show_demo
from .election import WorkerLock
from .errors import LedgerError
from .health import state_samples
from .items.cli import items_app
from .logs import configure as configure_logs
from .memberships.cli import memberships_app
from .merchants.cli import admin_app, admin_key, merchant_app, rate
from .metrics import REGISTRY, install_state
from .offers.cli import offers_app
from .runtime import Runtime
from .serving import HEARTBEAT_TIMEOUT_S, PortInUseError, Supervisor, own_sockets_supported
from .terminal import console, fail, open_alliance, settings
from .webhooks.cli import webhooks_app

app = typer.Typer(help="Alliance Ledger: the alliance operator's command line.",
                  no_args_is_help=True)
chain_app = typer.Typer(help="The local anvil chain.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(admin_app, name="admin")
app.add_typer(clearing_app, name="clearing")
app.add_typer(coupons_app, name="coupons")
app.add_typer(merchant_app, name="merchant")
app.add_typer(offers_app, name="offers")
app.add_typer(demo_app, name="demo")
app.add_typer(items_app, name="items")
app.add_typer(memberships_app, name="memberships")
app.add_typer(webhooks_app, name="webhooks")
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


# Seconds a stopping server waits for open responses before it cancels them and stops its
# workers: a console's figure stream is open for up to 30 s, and a supervisor (systemd,
# Kubernetes) kills a service that takes 30 s to stop before it has stopped its workers.
SHUTDOWN_GRACE_S = 5


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
    seed: Annotated[bool, typer.Option(help="Seed the demo alliance if empty")] = True,
) -> None:
    """Bring everything up: chain, contracts, demo alliance, and the API with /docs."""
    alliance = open_alliance()
    settings = alliance.settings
    configure_logs(settings.log_format)
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
                log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="API processes, none running the background workers (run "
        "`alliance worker` beside them). Unset: one process that runs them too")] = None,
    access_log: Annotated[bool, typer.Option(
        envvar="ALLIANCE_ACCESS_LOG",
        help="With --workers: uvicorn's line per request (off by default: /metrics counts "
        "requests by route and status, and the outbox logs every operation's id)")] = False,
    timeout_worker_healthcheck: Annotated[int, typer.Option(
        min=2, max=3600, help="With --workers N > 1 (Linux): seconds an API process's event "
        "loop may go without its heartbeat (every second) before the process is killed and "
        "replaced")] = int(HEARTBEAT_TIMEOUT_S),
) -> None:
    """Run the API (chain and deployment must be reachable)."""
    if workers is None:
        up(host=host, port=port, seed=False)
        return
    configure_logs(settings().log_format)
    # Migrate and deploy (or find the deployment) once, here, before N processes open it.
    alliance = open_alliance()
    bind_host = host or alliance.settings.api_host
    bind_port = port or alliance.settings.api_port
    if alliance.store.engine.dialect.name == "sqlite" and workers > 1:
        console.print("[yellow]several API processes on SQLite share one write lock; use "
                      "PostgreSQL (ALLIANCE_DATABASE_URL) for scale[/yellow]")
    alliance.close()
    console.print(f"API on [bold]http://{bind_host}:{bind_port}[/bold] in {workers} "
                  "processes, without background workers (run `alliance worker`)",
                  soft_wrap=True)
    options: dict[str, Any] = {
        "host": bind_host, "port": bind_port, "log_level": "info",
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_S,
        # A line per request is written on the event loop, between requests: ~9% of the
        # loop's busy samples under load (2026-11-26). A production server has the request
        # counts in /metrics; the line is there when asked for.
        "access_log": access_log}
    if workers > 1 and own_sockets_supported():
        # A listening socket per process (SO_REUSEPORT): the kernel spreads the connections
        # over the processes, instead of the first to accept taking most (ledger/serving.py).
        config = uvicorn.Config("api.app:create_api_only_app", factory=True, **options)
        try:
            status = Supervisor(config, workers=workers,
                                heartbeat_timeout=timeout_worker_healthcheck).run()
        except PortInUseError as exc:
            console.print(f"[red]error:[/red] {exc.strerror}")
            raise typer.Exit(code=1) from exc
        raise typer.Exit(code=status)
    uvicorn.run("api.app:create_api_only_app", factory=True, workers=workers,
                # A process imports web3 and opens the alliance (chain, store, deployment)
                # before it answers: seconds on a busy machine, more than uvicorn's 5 s default.
                timeout_worker_healthcheck=120, **options)


@app.command()
def worker(
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve this process's Prometheus metrics on 127.0.0.1:PORT/metrics")] = None,
    nice: Annotated[int, typer.Option(
        min=0, max=19, envvar="ALLIANCE_WORKER_NICE",
        help="Run the workers (and the indexer's child process) this much below the API's "
             "OS priority (os.nice): on a machine the API keeps busy, requests are answered "
             "first; 0, the default, leaves it as it is")] = 0,
) -> None:
    """Run the background workers only (outbox, indexer, expiry sweep), in the elected
    process: a second `alliance worker` stands by and takes over within seconds if the
    first dies (PostgreSQL advisory lock; on SQLite a file lock in the data dir). The
    indexer runs in a child process of its own (ALLIANCE_INDEXER_MODE: process, thread, or
    off to run `alliance indexer` yourself)."""
    configure_logs(settings().log_format)
    if nice:
        os.nice(nice)  # before the indexer's child process starts: it inherits it
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    alliance = open_alliance()
    lock = WorkerLock(alliance.store, alliance.settings.data_dir)
    try:
        if not lock.acquire(stop):
            return
        runtime = Runtime(alliance, indexer_mode=alliance.settings.indexer_mode)
        runtime.start()
        if metrics_port is not None:
            install_state(lambda: state_samples(alliance, runtime))
            start_http_server(metrics_port, addr="127.0.0.1", registry=REGISTRY)
        console.print(f"workers running (pid {os.getpid()}): "
                      f"{', '.join(w.name for w in runtime.workers)}")
        try:
            while not stop.wait(1.0):
                if not lock.held():
                    # The database restarted: the lock went with the session and a standby
                    # may hold it now. Exit rather than run beside it.
                    console.print("[red]lost the worker lock (database restart)[/red]")
                    raise typer.Exit(code=1)
                dead = [w.name for w in runtime.workers if not w.running]
                if dead:
                    # A worker thread never dies on a failed round (it logs and retries);
                    # one that did is a defect: exit so a standby takes over.
                    console.print(f"[red]worker threads died: {', '.join(dead)}[/red]")
                    raise typer.Exit(code=1)
        finally:
            runtime.stop()
    finally:
        lock.release()
        alliance.close()


@app.command("indexer")
def indexer_command() -> None:
    """Run the indexer only (the read model, the webhook events), elected like `alliance
    worker` (a second one stands by); run the workers beside it with
    ALLIANCE_INDEXER_MODE=off."""
    configure_logs(settings().log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    code = indexer_main.run(settings(), stop, ready=lambda _: console.print(
        f"indexer running (pid {os.getpid()})"))
    if code:
        raise typer.Exit(code=code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
