"""``alliance audit``: rebuild the alliance from any RPC endpoint's logs, check it, report.

Read only and keyless: it needs the registry's address and an RPC URL, nothing of the
service (no store, no deployment record, no key). Exit status 0: clean; 1: violations found;
2: the audit could not run (node unreachable, no registry there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..chain.gateway import ChainGateway
from ..contracts.compiler import compile_contracts
from ..errors import LedgerError
from ..settings import Settings
from .engine import AuditReport, run_audit
from .report import write_html, write_json

console = Console(stderr=True)


def audit(
    rpc_url: Annotated[str, typer.Option("--rpc-url", help="Any JSON-RPC endpoint of the chain")],
    registry: Annotated[str, typer.Option("--registry", help="The AllianceRegistry's address")],
    from_block: Annotated[int, typer.Option("--from-block", min=0,
                                            help="First block to read (the deployment's)")] = 0,
    to_block: Annotated[int | None, typer.Option("--to-block", min=0,
                                                 help="Last block (default: the head)")] = None,
    json_out: Annotated[Path, typer.Option("--json", help="JSON report path")] = Path(
        "audit.json"),
    html_out: Annotated[Path, typer.Option("--html", help="HTML report path")] = Path(
        "audit.html"),
    items: Annotated[str | None, typer.Option(
        "--items", help="The ItemRegistry's address, to audit the items too (nothing on chain "
        "names it: take it from the deployment)")] = None,
    expect_holder: Annotated[list[str] | None, typer.Option(
        "--expect-holder", help="An address the auditor knows was granted a role after the "
        "deployment (repeatable)")] = None,
) -> None:
    """Rebuild every balance, supply, order, position, period and settlement from the chain's
    logs alone; compare with the contracts; check the invariants; write JSON and HTML."""
    try:
        gateway = ChainGateway(rpc_url, timeout=120.0)
        artifacts = compile_contracts(Settings())
        with Progress(SpinnerColumn(), TextColumn("[bold]auditing[/bold] blocks"),
                      BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[events]} events"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                      transient=False) as progress:
            task = progress.add_task("blocks", total=None, events=0)

            def tick(done: int, total: int, events: int) -> None:
                progress.update(task, completed=done, total=total, events=events)

            report = run_audit(gateway, artifacts, registry=registry, from_block=from_block,
                               head=to_block, expected_holders=expect_holder or (),
                               progress=tick, items=items)
        write_json(report, json_out)
        write_html(report, html_out)
    except LedgerError as exc:
        console.print(f"[red]audit could not run:[/red] {exc}")
        raise typer.Exit(2) from exc
    show(report)
    console.print(f"reports: {json_out} {html_out}", soft_wrap=True)
    if not report.clean:
        raise typer.Exit(1)


def show(report: AuditReport) -> None:
    """The verdict and the findings, on the terminal."""
    if report.clean:
        console.print(f"[green]clean[/green]: {report.events} events in blocks "
                      f"{report.from_block}..{report.head}, {report.views_asked} views compared")
        return
    table = Table("rule", "code", "block", "message")
    for f in report.violations:
        table.add_row(f.rule, f.code, str(f.block or ""), f.message)
    console.print(table)
    console.print(f"[red]{len(report.violations)} violation(s)[/red] in {report.events} events")
