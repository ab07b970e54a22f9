"""Points for a consent: on the consent ledger's ``ConsentGranted`` the merchant's offered
points (``consent_rewards``) are issued to the member through the points service, under an
order id derived from the grant's member and kind (:func:`consent.reward_order_id`), so a
grant pays at most once and a chunk read again pays nothing more (the program refuses a
used order; the store refuses it before that)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..errors import LedgerError
from ..indexer.follower import ChainEvent, Head
from ..points import service as points_service
from ..types import MerchantId
from . import consent

log = logging.getLogger(__name__)


class ConsentProjection:
    name = "consent"
    events = frozenset({"ConsentGranted"})

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        ledger = self.alliance.contracts.consent
        return {} if ledger is None else {ledger.address: ledger}

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        n = 0
        for e in events:
            kind_name = bytes(e.args["kind"]).rstrip(b"\0").decode(errors="replace")
            kind = consent.KINDS.get(kind_name)
            if kind is None:
                continue
            merchant_id = int(e.args["merchantId"])
            points = consent.reward_of(session, merchant_id=merchant_id, kind=kind.name)
            if points <= 0:
                continue
            member = str(e.args["member"])
            try:
                with session.begin_nested():
                    points_service.request_issue(
                        self.alliance, session, merchant_id=MerchantId(merchant_id),
                        member=member, points=points,
                        order_id=consent.reward_order_id(kind, member))
                n += 1
            except LedgerError as exc:  # paid before (the same member and kind) or no program
                log.info("consent reward for %s %s at %d not queued: %s", member, kind.name,
                         merchant_id, exc)
        return n

    def rollback(self, session: Session, after_block: int) -> None:
        # Points already queued for a grant a reorg dropped are not taken back (known gap:
        # the chains this runs on today do not reorg; a reversal would be the merchant's).
        return None

    def on_head(self, session: Session, head: Head) -> int:
        return 0
