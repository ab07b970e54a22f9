"""The outbox's bell: rung when operations queued in this process have committed.

The outbox's thread waits on it after a round that did nothing, so an operation queued by
this process is sent at once instead of at the thread's next poll (``batch_window_ms``
later); and a round that was not rung skips reading the queue until that poll is due
(operations other processes queue are still found by it, as before).
"""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

# The key in ``Session.info`` that marks a session holding newly queued operations.
QUEUED = "outbox_queued"


class Bell:
    """A count of rings and a condition to wait for the next; any number of waiters."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rung = 0

    @property
    def rung(self) -> int:
        """How often it has rung (a waiter notes it, then waits for it to change)."""
        return self._rung

    def ring(self) -> None:
        with self._cond:
            self._rung += 1
            self._cond.notify_all()

    def wait(self, since: int, timeout: float) -> bool:
        """Wait until it rings after ``since`` (:attr:`rung` noted before) or ``timeout``
        seconds pass; True if it rang."""
        if self._rung != since:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: self._rung != since, timeout)


BELL = Bell()


def queued(session: Session) -> None:
    """Note that ``session`` queued operations: the bell rings once its transaction commits
    (not before: the worker woken would not see them yet), and not if it rolls back."""
    session.info[QUEUED] = True


@event.listens_for(Session, "after_commit")
def _ring_after_commit(session: Session) -> None:
    if session.info.pop(QUEUED, False):
        BELL.ring()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(QUEUED, None)
