"""Helpers shared by the ledger-layer tests."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.points.service import order_ref
from ledger.signing import convert_typed_data, redeem_typed_data


def sign_redemption(member: LocalAccount, *, program: str, registry: str, chain_id: int,
                    amount: int, merchant_id: int, order_id: str, nonce: int,
                    deadline: int) -> str:
    """The member's EIP-712 signature of a redemption, as 0x-hex."""
    typed = redeem_typed_data(chain_id=chain_id, program=program, registry=registry,
                              member=member.address,
                              amount=amount, merchant_id=merchant_id,
                              order_ref=order_ref(order_id), nonce=nonce, deadline=deadline)
    signed = Account.sign_typed_data(member.key, full_message=typed)
    return "0x" + bytes(signed.signature).hex()


def sign_conversion(member: LocalAccount, *, program: str, registry: str, chain_id: int,
                    amount: int, to_merchant_id: int, min_out: int, order_id: str, nonce: int,
                    deadline: int) -> str:
    """The member's EIP-712 signature of a conversion out of ``program``, as 0x-hex."""
    typed = convert_typed_data(chain_id=chain_id, program=program, registry=registry,
                               member=member.address,
                               amount=amount, to_merchant_id=to_merchant_id, min_out=min_out,
                               order_ref=order_ref(order_id), nonce=nonce, deadline=deadline)
    signed = Account.sign_typed_data(member.key, full_message=typed)
    return "0x" + bytes(signed.signature).hex()


def runs_beside(work: Callable[[], None]) -> int:
    """How many times another thread ran while ``work`` ran, with a switch interval longer
    than the test: it runs only if ``work`` lets the GIL go."""
    ran = [0]
    stop = threading.Event()
    started = threading.Event()

    def other() -> None:
        started.set()
        while not stop.is_set():
            ran[0] += 1
            stop.wait(0.0001)  # lets the GIL go, and asks for it back at once

    # (set before the other thread starts: a thread already waiting for the GIL keeps the
    # interval it began waiting with)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(60)
    thread = threading.Thread(target=other)
    try:
        thread.start()
        started.wait()
        before = ran[0]
        work()
        during = ran[0] - before
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        if thread.is_alive():
            thread.join()
    return during
