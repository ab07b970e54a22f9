"""A member's points, read from the chain (balances) and the indexed events (history).

Scoped by who asks: a merchant sees its own program (balances, history) and what happened at
its store (other programs' points spent or converted there); the operator (and auditors, with
operator read credentials) sees everything. The member sees everything of its own through the
member app's session (not built yet)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ledger import points

from ..auth import Principal
from ..deps import AllianceDep, AnyPrincipalDep
from ..schemas import AddressPath, BalancesOut, Cursor, HistoryOut, LotOut, ProgramBalanceOut

router = APIRouter(prefix="/v1/members", tags=["members"])


def _scope(who: Principal) -> int | None:
    """The merchant whose view this is (None: the operator's, everything)."""
    return None if who.role == "admin" else who.merchant_id or -1


@router.get("/{address}/balances", response_model=BalancesOut)
def balances(address: AddressPath, alliance: AllianceDep, who: AnyPrincipalDep) -> BalancesOut:
    """Spendable and pending points, lots by earn period, next nonce: in your own program
    (a merchant), or in every program (the operator)."""
    progs = points.balances(alliance, member=address, merchant_id=_scope(who))
    return BalancesOut(member=address, programs=[
        ProgramBalanceOut(merchant_id=b.merchant_id, merchant_name=b.merchant_name,
                          program=b.program, symbol=b.symbol, spendable=b.spendable,
                          pending=b.pending, next_nonce=b.next_nonce,
                          lots=[LotOut(period=p, points=a) for p, a in b.lots])
        for b in progs])


@router.get("/{address}/history", response_model=HistoryOut)
def history(address: AddressPath, alliance: AllianceDep, who: AnyPrincipalDep,
            limit: Annotated[int, Query(ge=1, le=500)] = 50,
            cursor: Cursor = None) -> HistoryOut:
    """The member's point events, newest first; pass ``next_cursor`` for the next page.
    A merchant sees its own program's events and those at its store."""
    events, nxt = points.history(alliance, member=address, limit=limit, cursor=cursor,
                                 merchant_id=_scope(who))
    return HistoryOut(member=address, events=events, next_cursor=nxt)
