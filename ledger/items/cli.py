"""``alliance items ...``: make a merchant a brand, verify a code, an item's history, labels."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..alliance import Alliance
from ..runtime import indexer
from ..terminal import console, run
from . import service

items_app = typer.Typer(help="Serial-coded items: brands, verification, history, labels.",
                        no_args_is_help=True)


@items_app.command("grant-brand")
def grant_brand(merchant_id: int) -> None:
    """Give a merchant the brand role (admin action through the timelock)."""
    def act(a: Alliance) -> None:
        action = service.grant_brand(a, merchant_id=merchant_id)
        console.print(f"brand role for merchant {merchant_id}: admin action {action.id}")
    run(act)


@items_app.command("verify")
def verify(code: str) -> None:
    """Verify a scanned code (GS1 Digital Link URI) from the read model, as the public does."""
    def act(a: Alliance) -> None:
        indexer(a).catch_up()
        with a.store.session() as s:
            v = service.verify(s, code=code)
        console.print_json(json.dumps({"verdict": v.verdict, "reasons": v.reasons,
                                       "status": v.status, "message": v.message,
                                       "history": v.history}))
    run(act)


@items_app.command("history")
def history(code: str, epcis: Annotated[bool, typer.Option(help="EPCIS 2.0 JSON-LD")] = False
            ) -> None:
    """An item's history (JSON, or an EPCIS 2.0 document)."""
    def act(a: Alliance) -> None:
        indexer(a).catch_up()
        with a.store.read_session() as s:
            out = (service.epcis_export(s, code=code) if epcis
                   else service.item_history(s, code=code))
        console.print_json(json.dumps(out))
    run(act)


@items_app.command("labels")
def labels(merchant_id: int, batch_id: int,
           resolver: Annotated[str, typer.Option()] = "id.alliance.example") -> None:
    """A batch's labels as CSV for the printer (with their secrets: keep it safe)."""
    def act(a: Alliance) -> None:
        with a.store.read_session() as s:
            codes = service.batch_labels(a, s, merchant_id=merchant_id, batch_id=batch_id)
        typer.echo(service.labels_csv(codes, resolver), nl=False)
    run(act)
