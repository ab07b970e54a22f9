"""Members in the store: pseudonymous accounts keyed by the partner's member id, and linked
wallets. No personal data: the member id is kept only as a keyed hash.
"""

from __future__ import annotations

import secrets as pysecrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import crypto
from ..crypto import MasterKey
from ..errors import LedgerConflictError
from ..store.models import Member
from ..store.repos import get_or_create_secret

PSEUDONYM_KEY = "pseudonym-key"


@dataclass(frozen=True)
class MemberView:
    """A member as the service knows it: never the alliance member id itself."""

    pseudonym: str
    account: str
    wallet: str | None

    @property
    def address(self) -> str:
        """The address the member's points live at: the linked wallet, else the custodial
        account."""
        return self.wallet or self.account


def _member_view(row: Member) -> MemberView:
    return MemberView(row.pseudonym, row.account, row.wallet)


def get_or_create_member(session: Session, master: MasterKey, *, member_id: str) -> MemberView:
    """The member known by an alliance member id, recorded on first sight with its keyed
    pseudonym and custodial account. The member id itself is never stored."""
    key = get_or_create_secret(session, master, PSEUDONYM_KEY, lambda: pysecrets.token_bytes(32))
    pseud = crypto.pseudonym(member_id, key)
    row = session.scalar(select(Member).where(Member.pseudonym == pseud))
    if row is None:
        address = crypto.custodial_address(member_id, key)
        try:
            with session.begin_nested():
                row = Member(pseudonym=pseud, account=address)
                session.add(row)
        except IntegrityError:
            row = session.scalar(select(Member).where(Member.pseudonym == pseud))
            assert row is not None
    return _member_view(row)


def custodial_key(session: Session, master: MasterKey, *, member_id: str) -> bytes:
    """The private key of a member id's custodial account (the service signs with it only
    to move the account's points to the member's own wallet)."""
    key = get_or_create_secret(session, master, PSEUDONYM_KEY, lambda: pysecrets.token_bytes(32))
    return crypto.custodial_private_key(member_id, key)


def member_account(session: Session, master: MasterKey, *, member_id: str) -> str:
    """The on-chain account of an alliance member id (its linked wallet if any), created on
    first sight."""
    return get_or_create_member(session, master, member_id=member_id).address


def link_wallet(session: Session, master: MasterKey, *, member_id: str,
                wallet: str) -> MemberView:
    """Link a wallet the member proved to control; give the member as now recorded.

    Raises LedgerConflictError if the wallet is already linked to another member."""
    view = get_or_create_member(session, master, member_id=member_id)
    row = session.scalar(select(Member).where(Member.pseudonym == view.pseudonym))
    assert row is not None
    if row.wallet == wallet:
        return view
    try:
        with session.begin_nested():
            row.wallet = wallet
    except IntegrityError as exc:
        raise LedgerConflictError("this wallet is linked to another member",
                                  code="wallet-linked") from exc
    return _member_view(row)
