"""A member's points, read from the chain (balances) and the indexed events (history).

Scoped by who asks: a merchant sees its own program (balances, history) and what happened at
its store (other programs' points spent or converted there); the operator (and auditors, with
operator read credentials) sees everything. The member sees everything of its own through the
member app's session (not built yet)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from ledger.points import reads as points
from ledger.types import MerchantId

from ..auth import Principal
from ..deps import AllianceDep, AnyPrincipalDep
from ..schemas.common import AddressPath, Cursor, HistoryLimit
from ..schemas.members import BalancesOut, HistoryOut, ProgramBalanceOut

router = APIRouter(prefix="/v1/members", tags=["members"])


def _scope(who: Principal) -> MerchantId | None:
    """The merchant whose view this is (None: the operator's, everything)."""
    return None if who.role == "admin" else who.merchant_id or MerchantId(-1)


@router.get("/{address}/balances", response_model=BalancesOut)
def balances(address: AddressPath, alliance: AllianceDep, who: AnyPrincipalDep) -> BalancesOut:
    """Per program: balance (what the Transfer logs say) = spendable + pending + expired not
    yet swept; pending orders' release times; lots with their expiry times; an unused nonce.
    In your own program (a merchant), or in every program (the operator)."""
    read = points.balances_at(alliance, member=address, merchant_id=_scope(who))
    return BalancesOut(member=address, programs=[
        ProgramBalanceOut.model_validate(asdict(b)) for b in read.programs],
        as_of_block=read.as_of_block)


@router.get("/{address}/history", response_model=HistoryOut)
def history(address: AddressPath, alliance: AllianceDep, who: AnyPrincipalDep,
            limit: HistoryLimit = 50,
            cursor: Cursor = None) -> HistoryOut:
    """The member's point events, newest first; pass ``next_cursor`` for the next page.
    A merchant sees its own program's events and those at its store."""
    page = points.history_page(alliance, member=address, limit=limit, cursor=cursor,
                               merchant_id=_scope(who))
    return HistoryOut(member=address, events=page.events, next_cursor=page.next_cursor,
                      as_of_block=page.as_of_block)
