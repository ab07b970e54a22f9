"""The transaction sender: one per signing key.

It owns that key's nonces (reserved from a :class:`NonceSource`, never asked from the node per
transaction), signs locally, broadcasts, follows receipts, and rebroadcasts or replaces a
stuck transaction with a fee bump. Reverts come back as ContractRevertError, decoded by the
gateway from a replay of the call at the block it failed in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import coincurve
import rlp  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy.orm import Session

from ..errors import ChainError, ChainTimeoutError, ContractRevertError
from ..metrics import CONFIRMATION_LAG, TX_CONFIRMED, TX_FAILED, TX_FEE_BUMPS, TX_SENT
from ..store import repos
from ..store.db import Store
from .encoding import keccak256
from .gateway import ChainGateway
from .secp import sign_recoverable

log = logging.getLogger(__name__)

FEE_BUMP_PERCENT = 15  # nodes require ≥ 10 % more to replace a pending transaction
GAS_HEADROOM_PERCENT = 20


class NonceSource(Protocol):
    """Hands out contiguous nonces of one signer; never the same nonce twice."""

    def reserve(self, count: int) -> int:
        """Reserve ``count`` nonces; give the first."""
        ...


class MemoryNonces:
    """A nonce source kept in memory, started from the node's pending count (tools, deploy)."""

    def __init__(self, gateway: ChainGateway, address: str) -> None:
        self._next = gateway.nonce(address, "pending")
        self._lock = threading.Lock()

    def reserve(self, count: int) -> int:
        with self._lock:
            first = self._next
            self._next += count
            return first


@dataclass
class SentTx:
    """A signed, broadcast transaction and what is needed to rebroadcast or replace it."""

    tx_hash: str
    nonce: int
    raw: bytes
    to: str | None
    data: bytes
    gas: int
    max_fee: int
    priority_fee: int
    sent_at: float
    value: int = 0

    @property
    def upfront_cost(self) -> int:
        """Wei the signer must hold for the node to accept it: gas × max fee + value."""
        return self.gas * self.max_fee + self.value


# Called with (the stuck transaction, its fee-bumped replacement) once the replacement is
# signed, before it is broadcast.
Replaced = Callable[[SentTx, SentTx], None]


def _already_known(exc: ChainError) -> bool:
    """A node's answer that it holds the transaction already: not an error of a send."""
    msg = str(exc).lower()
    return "already known" in msg or "already imported" in msg


def sign_dynamic_fee(key: coincurve.PrivateKey, *, chain_id: int, nonce: int, priority: int,
                     max_fee: int, gas: int, to: str | None, value: int, data: bytes
                     ) -> tuple[bytes, bytes]:
    """An EIP-1559 (type 2) transaction with an empty access list, signed: (raw bytes,
    hash), encoded by pyrlp (eth-account's own RLP) and signed by libsecp256k1 (coincurve's
    copy, which eth-keys uses too, called holding the GIL: :mod:`.secp`). The same bytes as
    eth_account's ``sign_transaction`` (RFC 6979 nonces, low s;
    ``tests/ledger/test_encoding.py`` compares them on random transactions), without its
    layers of dict validation and typed-transaction objects: signing a 200-line batch cost
    the outbox ~5 us an operation that way."""
    if to is not None and (len(to) != 42 or to[:2] not in ("0x", "0X")):
        raise ValueError(f"not an address: {to!r}")
    fields = [chain_id, nonce, priority, max_fee, gas, bytes.fromhex(to[2:]) if to else b"",
              value, data, []]
    digest = keccak256(b"\x02" + rlp.encode(fields))
    sig = sign_recoverable(digest, key.secret)
    r, s_, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    raw = b"\x02" + rlp.encode([*fields, v, r, s_])
    return raw, keccak256(raw)


class TransactionSender:
    """Signs and sends transactions of one key, and follows them to a receipt."""

    def __init__(self, gateway: ChainGateway, private_key: bytes | str,
                 nonces: NonceSource | None = None, *, receipt_timeout_s: float = 60.0,
                 poll_s: float = 0.05) -> None:
        self.gateway = gateway
        self.account: LocalAccount = Account.from_key(private_key)
        self.address: str = self.account.address
        self._key = coincurve.PrivateKey(bytes(self.account.key))
        self.nonces = nonces or MemoryNonces(gateway, self.address)
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_s = poll_s
        self._fees: tuple[int, int] | None = None
        self._fees_at = 0.0

    # ------------------------------------------------------------------ sending

    def estimate(self, to: str | None, data: bytes) -> int:
        """Simulate the call; a revert raises ContractRevertError before any nonce is used."""
        gas = self.gateway.estimate_gas(sender=self.address, to=to, data=data)
        return gas + gas * GAS_HEADROOM_PERCENT // 100

    def send(self, *, to: str | None, data: bytes, gas: int | None = None,
             nonce: int | None = None, value: int = 0) -> SentTx:
        """Sign and broadcast one transaction; estimate its gas first unless given."""
        if gas is None:
            gas = self.estimate(to, data)
        max_fee, priority = self._current_fees()
        if nonce is None:
            nonce = self.nonces.reserve(1)
        return self._sign_and_send(to=to, data=data, gas=gas, nonce=nonce, max_fee=max_fee,
                                   priority=priority, value=value)

    def _sign_and_send(self, *, to: str | None, data: bytes, gas: int, nonce: int,
                       max_fee: int, priority: int, value: int = 0) -> SentTx:
        sent = self.sign(to=to, data=data, gas=gas, nonce=nonce, max_fee=max_fee,
                         priority=priority, value=value)
        self.broadcast(sent)
        return sent

    def fees(self) -> tuple[int, int]:
        """(max fee, priority fee) per gas a transaction signed now would carry."""
        return self._current_fees()

    def sign(self, *, to: str | None, data: bytes, gas: int, nonce: int | None = None,
             max_fee: int | None = None, priority: int | None = None,
             value: int = 0) -> SentTx:
        """Sign a transaction without sending it (so it can be recorded first)."""
        if max_fee is None or priority is None:
            max_fee, priority = self._current_fees()
        if nonce is None:
            nonce = self.nonces.reserve(1)
        raw, tx_hash = sign_dynamic_fee(self._key, chain_id=self.gateway.chain_id, nonce=nonce,
                                        priority=priority, max_fee=max_fee, gas=gas, to=to,
                                        value=value, data=data)
        return SentTx("0x" + tx_hash.hex(), nonce, raw, to, data, gas, max_fee, priority,
                      time.monotonic(), value)

    def broadcast(self, sent: SentTx) -> None:
        """Send a signed transaction; one the node already has is not an error."""
        try:
            self.gateway.send_raw(sent.raw)
        except ChainError as exc:
            if not _already_known(exc):
                raise
        sent.sent_at = time.monotonic()
        TX_SENT.inc()
        log.debug("sent %s nonce=%d gas=%d", sent.tx_hash, sent.nonce, sent.gas)

    def broadcast_many(self, sents: list[SentTx]) -> list[ChainError | None]:
        """Send signed transactions in one JSON-RPC batch (one arrival on the node: an
        automining node builds one block of as many as fit, where one request each built a
        block each); give, per transaction, None if the node took it (or had it already) or
        the error it answered with (SignerUnfundedError for a key that cannot pay). A node
        that cannot be reached gives its error for each."""
        if len(sents) == 1:
            try:
                self.broadcast(sents[0])
                return [None]
            except ChainError as exc:
                return [exc]
        # On anvil mining on arrival the batch goes highest nonce first, so one block takes
        # the round (ChainGateway.sends_highest_nonce_first): sent lowest first, the outbox's
        # 50 batches of a benchmark run went in 21-31 blocks, most of one transaction, and
        # the node's CPU per op follows its block count (scratch probe: 5 batches of 4 in 5
        # full blocks, against 8 blocks lowest first). Answers are given in ``sents``' order
        # either way.
        order = sorted(range(len(sents)), key=lambda i: sents[i].nonce, reverse=True) \
            if self.gateway.sends_highest_nonce_first else list(range(len(sents)))
        try:
            sent_answers = self.gateway.rpc_batch(
                [("eth_sendRawTransaction", ["0x" + sents[i].raw.hex()]) for i in order])
        except ChainError as exc:
            return [exc for _ in sents]
        answers: list[Any] = [None] * len(sents)
        for i, answer in zip(order, sent_answers, strict=True):
            answers[i] = answer
        out: list[ChainError | None] = []
        now = time.monotonic()
        for sent, answer in zip(sents, answers, strict=True):
            if isinstance(answer, ChainError) and not _already_known(answer):
                out.append(answer)  # (SignerUnfundedError for a key that cannot pay)
                continue
            sent.sent_at = now
            TX_SENT.inc()
            out.append(None)
        return out

    def _current_fees(self) -> tuple[int, int]:
        # Fees change slowly; asking once a second saves two round trips per transaction.
        now = time.monotonic()
        if self._fees is None or now - self._fees_at > 1.0:
            self._fees = self.gateway.fees()
            self._fees_at = now
        return self._fees

    # ------------------------------------------------------------------ receipts

    def wait(self, sent: SentTx, *, timeout_s: float | None = None,
             on_replace: Replaced | None = None) -> dict[str, Any]:
        """Wait for ``sent`` to be mined; rebroadcast, then replace with a fee bump, if stuck.

        Gives the receipt of whichever transaction with this nonce was mined; raises
        ContractRevertError if it reverted, ChainTimeoutError if nothing was mined in time.
        ``on_replace(stuck, replacement)`` is called with each replacement signed, before it
        is broadcast (the outbox records it).
        """
        deadline = time.monotonic() + (timeout_s or self.receipt_timeout_s * 3)
        candidates = [sent]
        bumped_at = time.monotonic()
        pause = 0.002  # an instant-mining node answers at once; a real chain backs off
        while True:
            for cand in candidates:
                receipt = self.gateway.receipt(cand.tx_hash)
                if receipt is not None:
                    return self.check(receipt, cand)
            now = time.monotonic()
            if now > deadline:
                raise ChainTimeoutError(f"no receipt for nonce {sent.nonce} of {self.address}",
                                        tx_hash=sent.tx_hash)
            if now - bumped_at > self.receipt_timeout_s:
                try:
                    candidates.append(self.replace(candidates[-1]) if on_replace is None
                                      else self.replace(candidates[-1], on_replace))
                except ChainError as exc:
                    # "nonce too low": a transaction with this nonce was mined meanwhile;
                    # its receipt is found on the next poll.
                    if "nonce too low" not in str(exc).lower():
                        raise
                bumped_at = now
            time.sleep(pause)
            pause = min(pause * 2, self.poll_s)

    def replace(self, stuck: SentTx, on_replace: Replaced | None = None) -> SentTx:
        """Rebroadcast ``stuck``; if the node lost it, re-sign it at the same nonce with fees
        raised by FEE_BUMP_PERCENT so it replaces any copy still in a mempool.
        ``on_replace(stuck, replacement)`` runs after signing, before the broadcast."""
        if self.gateway.transaction(stuck.tx_hash) is None:
            try:
                self.gateway.send_raw(stuck.raw)
                log.warning("rebroadcast dropped tx %s", stuck.tx_hash)
            except ChainError:
                log.warning("rebroadcast of %s refused; replacing", stuck.tx_hash)
        max_fee = stuck.max_fee + stuck.max_fee * FEE_BUMP_PERCENT // 100 + 1
        priority = stuck.priority_fee + stuck.priority_fee * FEE_BUMP_PERCENT // 100 + 1
        base_now, _ = self._current_fees()
        max_fee = max(max_fee, base_now + priority)
        log.warning("replacing stuck tx %s (nonce %d) with a fee bump", stuck.tx_hash, stuck.nonce)
        TX_FEE_BUMPS.inc()
        bumped = self.sign(to=stuck.to, data=stuck.data, gas=stuck.gas, nonce=stuck.nonce,
                           max_fee=max_fee, priority=priority, value=stuck.value)
        if on_replace is not None:
            on_replace(stuck, bumped)
        self.broadcast(bumped)
        return bumped

    def check(self, receipt: dict[str, Any], sent: SentTx) -> dict[str, Any]:
        """Return the receipt if it succeeded, else raise the decoded revert."""
        CONFIRMATION_LAG.observe(max(time.monotonic() - sent.sent_at, 0.0))
        if int(receipt.get("status", 0)) == 1:
            TX_CONFIRMED.inc()
            return receipt
        TX_FAILED.inc()
        raise self.revert_reason(sent, int(receipt["blockNumber"]))

    def revert_reason(self, sent: SentTx, block: int) -> ContractRevertError:
        """Replay a failed transaction as a call at its block to learn the custom error."""
        try:
            self.gateway.w3.eth.call(
                {"from": self.address, "to": sent.to, "data": HexBytes(sent.data),
                 "gas": sent.gas} if sent.to else {"from": self.address,
                                                   "data": HexBytes(sent.data)},
                block_identifier=block)
        except Exception as exc:  # noqa: BLE001 - every failure is mapped below
            err = self.gateway.map_error(exc)
            if isinstance(err, ContractRevertError):
                return err
        return ContractRevertError("OutOfGasOrUnknown", (), tx_hash=sent.tx_hash)

    def transact(self, *, to: str | None, data: bytes, gas: int | None = None,
                 value: int = 0) -> dict[str, Any]:
        """Send and wait: for operator actions that are not batched (and ether transfers)."""
        return self.wait(self.send(to=to, data=data, gas=gas, value=value))


class StoreSender(TransactionSender):
    """A sender whose nonces are kept in the store (:class:`StoreNonces`): every signer of
    the service (the alliance's keys and the merchants'), so the outbox can reserve a round's
    nonces inside the transaction that claims its operations."""

    nonces: StoreNonces

    def __init__(self, gateway: ChainGateway, private_key: bytes | str, store: Store, *,
                 receipt_timeout_s: float = 60.0, poll_s: float = 0.05) -> None:
        address = Account.from_key(private_key).address
        super().__init__(gateway, private_key, StoreNonces(store, gateway, address),
                         receipt_timeout_s=receipt_timeout_s, poll_s=poll_s)


class StoreNonces:
    """The nonce manager of one signer, persisted in the store so restarts and several
    processes never hand out the same nonce twice."""

    def __init__(self, store: Store, gateway: ChainGateway, address: str) -> None:
        self.store = store
        self.gateway = gateway
        self.address = address

    def reserve(self, count: int) -> int:
        with self.store.session() as s:
            return self.reserve_in(s, count)

    def reserve_in(self, session: Session, count: int) -> int:
        """Reserve ``count`` nonces inside the caller's write transaction (the outbox claims
        operations and reserves their nonces in one)."""
        return repos.reserve_nonces(
            session, chain_id=self.gateway.chain_id, address=self.address, count=count,
            chain_nonce=lambda: self.gateway.nonce(self.address, "pending"))

    def resync(self) -> None:
        """Align the counter with the node after a restart (drops gaps left by a crash)."""
        with self.store.session() as s:
            repos.reset_nonce(s, chain_id=self.gateway.chain_id, address=self.address,
                              next_nonce=self.gateway.nonce(self.address, "pending"))
