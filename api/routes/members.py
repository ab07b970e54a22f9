"""A member's points, read from the chain (balances) and the indexed events (history)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from ledger import points

from ..deps import AllianceDep, AnyPrincipalDep
from ..schemas import BalancesOut, HistoryOut, ProgramBalanceOut

router = APIRouter(prefix="/v1/members", tags=["members"])


@router.get("/{address}/balances", response_model=BalancesOut)
def balances(address: str, alliance: AllianceDep, who: AnyPrincipalDep) -> BalancesOut:
    """Per program: balance (what the Transfer logs say) = spendable + pending + expired not
    yet swept; pending orders' release times; lots with their expiry times; an unused nonce."""
    progs = points.balances(alliance, member=address)
    return BalancesOut(member=address, programs=[
        ProgramBalanceOut.model_validate(asdict(b)) for b in progs])


@router.get("/{address}/history", response_model=HistoryOut)
def history(address: str, alliance: AllianceDep, who: AnyPrincipalDep,
            limit: Annotated[int, Query(ge=1, le=500)] = 50,
            cursor: Annotated[int | None, Query(ge=0)] = None) -> HistoryOut:
    """The member's point events, newest first; pass ``next_cursor`` for the next page."""
    events, nxt = points.history(alliance, member=address, limit=limit, cursor=cursor)
    return HistoryOut(member=address, events=events, next_cursor=nxt)
