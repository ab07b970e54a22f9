"""The operator's audit commands, which use the service's store: auditor credentials and the
drift report (``alliance audit`` itself is in :mod:`ledger.audit.cli` and needs no store)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..terminal import console, open_alliance
from .service import create_auditor_credential, store_drift


def auditor_key() -> None:
    """Create auditor API credentials (read-only: the audit reports) and print them once."""
    alliance = open_alliance()
    try:
        key_id, secret = create_auditor_credential(alliance)
    finally:
        alliance.close()
    console.print(f"auditor key id [bold]{key_id}[/bold]\nsecret         [bold]{secret}[/bold]")


def drift(as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """Compare the service's store with the chain; exit 1 on any drift."""
    alliance = open_alliance()
    try:
        report = store_drift(alliance)
    finally:
        alliance.close()
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        for d in report.drifts:
            console.print(f"[red]{d.table}[/red] {d.key}: {d.message}\n  store: {d.store}\n"
                          f"  chain: {d.chain}", soft_wrap=True)
        console.print(f"compared {report.compared}; "
                      + ("[green]no drift[/green]" if report.clean
                         else f"[red]{len(report.drifts)} drift(s)[/red]"))
    if not report.clean:
        raise typer.Exit(1)
