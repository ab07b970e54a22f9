"""What every command of the ``alliance`` CLI shares: the console, opening the alliance,
printing errors and credentials.

Output is for people: rich tables, one fact a line where an operator copies it, secrets on
lines of their own (never cut to fit a terminal).
"""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console

from . import governance
from .alliance import Alliance
from .errors import LedgerError
from .settings import Settings, get_settings

console = Console()
# The width a merchant table needs to show every column whole (a 42-character address).
WIDE_TABLE = 110


def settings() -> Settings:
    return get_settings()


def open_alliance() -> Alliance:
    return Alliance.open(settings())


def fail(exc: LedgerError) -> None:
    console.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(code=1)


def run(action: Callable[[Alliance], None]) -> None:
    alliance = open_alliance()
    try:
        action(alliance)
    except LedgerError as exc:
        fail(exc)
    finally:
        alliance.close()


def say_pending(alliance: Alliance) -> None:

    waiting = governance.pending(alliance)
    if waiting:
        console.print(f"{len(waiting)} admin action(s) waiting in the timelock: see "
                      "`alliance admin pending`")


def print_credentials(rows: list[tuple[int, str, str, str, str]]) -> None:
    # Plain lines, never a table: a secret must not be cut to fit a narrow terminal.
    for merchant_id, name, program, key_id, secret in rows:
        console.print(f"[bold]merchant {merchant_id}[/bold] {name}\n"
                      f"  program  {program}\n  key id   {key_id}\n"
                      f"  secret   {secret}   (shown once)", soft_wrap=True)
