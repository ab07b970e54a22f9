"""The outbox worker: sends queued operations to the chain, exactly once.

Crash safety comes from the order of steps, each its own database commit:

1. claim: queued operations of one signer become ``sending`` (no other worker takes them);
2. sign: the transaction is signed, and its hash, nonce and raw bytes are recorded with the
   operations marked ``submitted`` — *before* it is broadcast;
3. broadcast, then wait for the receipt; mark ``confirmed`` (block number) or, on a revert,
   bisect the batch so only the offending operations fail, each with the Solidity error name.

On start, :meth:`OutboxWorker.recover` looks at what a crash may have left: ``submitted``
operations whose transaction was mined are settled from the receipt; ones the node never saw
are rebroadcast from the recorded raw bytes (same nonce, so it cannot land twice); ``sending``
ones (claimed, never signed) go back to ``queued``; then the signer's nonce counter is aligned
with the node. A resend that races a landed one is harmless: the program rejects a second
issue of the same order reference.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..chain.sender import SentTx, StoreNonces, TransactionSender
from ..clearing.service import confirm_payment_calldata, deposit_calldata
from ..errors import ChainError, ContractRevertError, LedgerError
from ..merchants import repos as merchant_repos
from ..merchants.service import merchant_signing_key
from ..points.clients import Conversion, IssueItem, Redemption
from ..worker import Worker
from . import repos as outbox_repos

log = logging.getLogger(__name__)

ISSUE_KINDS = ("issue", "issue_batch")
REDEEM_KINDS = ("redeem", "redeem_batch")
SWEEP_KIND = "sweep_expired"  # ledger/expiry.py queues it
# Transactions sent back to back per merchant per round before their receipts are awaited.
PIPELINE_TXS = 4

# Gas bounds per line, above the worst case each path can take (measured: a new member's
# line costs ~52k, a pending line ~100k, a lot moving out of the account slot +22k), so the
# happy path needs no eth_estimateGas: estimating runs the batch several times over, sending
# runs it once. A transaction that fails anyway is retried through simulation.
GAS_BASE = 80_000
GAS_PER_LINE = 90_000
GAS_PER_PENDING_LINE = 140_000
# A redemption line costs ~67-75k (signature, a member's first nonce, record, one lot); the
# bound leaves room for a walk over a few lots while a 200-line batch stays far below a 30M
# block. A line that needs more (many pending orders to scan) makes the batch fail once; the
# retry estimates its gas.
GAS_PER_REDEEM_LINE = 110_000
GAS_REDEEM_BASE = 200_000
# sweepExpired: per member its account slot, per lot a PointsExpired and a Transfer log (and
# the lot's slot cleared when it is not the account's head lot). Measured: 9,118 gas per
# one-lot member in a 200-member sweep, against a floor of 8,905 (1.02x;
# tests/ledger/test_expiry_sweep.py); each further lot adds ~9k. The bound leaves room for
# ~6 lots a member (a sweeper that was down over several boundaries); a batch that needs more
# fails once and its retry estimates its gas. 200 members stay below 12.1M gas.
GAS_SWEEP_BASE = 60_000
GAS_PER_SWEPT_MEMBER = 60_000
GAS_SINGLE = {"reverse": 250_000, "convert": 600_000, "refund_redemption": 300_000,
              "deposit": 300_000, "confirm_payment": 250_000, "cancel_nonces": 120_000}

Group = list[tuple[str, str, dict[str, Any]]]
# Transactions sent and not yet settled: (sender, own program, group, transaction).
InFlight = list[tuple[TransactionSender, str, Group, SentTx]]


def gas_bound(group: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
    """An upper bound of the gas a group's transaction can use."""
    kind = group[0][1]
    if kind in ISSUE_KINDS:
        lines = [line for _, _, p in group for line in p["items"]]
        pending = sum(1 for line in lines if int(line.get("release_at") or 0) > 0)
        return GAS_BASE + GAS_PER_LINE * (len(lines) - pending) + GAS_PER_PENDING_LINE * pending
    if kind in REDEEM_KINDS:
        return GAS_REDEEM_BASE + GAS_PER_REDEEM_LINE * sum(len(p["items"]) for _, _, p in group)
    if kind == SWEEP_KIND:
        return GAS_SWEEP_BASE + GAS_PER_SWEPT_MEMBER * sum(len(p["items"]) for _, _, p in group)
    return GAS_SINGLE.get(kind, 500_000)


def batch_key(kind: str, payload: dict[str, Any], own_program: str) -> tuple[str, str] | None:
    """Operations with the same key share one batch call; None: sent on their own."""
    if kind in ISSUE_KINDS:
        return ("issue", own_program)
    if kind in REDEEM_KINDS:
        return ("redeem", str(payload["program"]))
    return None


def group_operations(claimed: Sequence[tuple[str, str, dict[str, Any]]], own_program: str,
                     limit: int) -> list[Group]:
    """Split claimed operations into transactions: batchable ones by target, up to ``limit``
    lines each, in the order claimed; the rest one per transaction."""
    open_groups: dict[tuple[str, str], tuple[Group, int]] = {}
    groups: list[Group] = []
    for c in claimed:
        key = batch_key(c[1], c[2], own_program)
        if key is None:
            groups.append([c])
            continue
        n = len(c[2]["items"])
        current = open_groups.get(key)
        if current is None or current[1] + n > limit:
            group: Group = []
            groups.append(group)
            current = (group, 0)
        current[0].append(c)
        open_groups[key] = (current[0], current[1] + n)
    return groups


class OutboxWorker(Worker):
    """Sends the outbox's operations; one thread per process is enough for many signers."""

    name = "outbox"

    def __init__(self, alliance: Alliance, *, idle_sleep_s: float | None = None) -> None:
        super().__init__(idle_sleep_s=idle_sleep_s if idle_sleep_s is not None
                         else alliance.settings.batch_window_ms / 1000)
        self.alliance = alliance
        self._senders: dict[int, TransactionSender] = {}

    # ------------------------------------------------------------------ one round

    def process_once(self) -> int:
        """Send up to PIPELINE_TXS batches per signer with queued work, then settle them;
        give the operations done. Every signer's transactions go out before any receipt is
        awaited, so the chain works on one merchant's batch while the next is being sent."""
        done, in_flight = self._submit_round()
        self._settle_round(in_flight)
        return done

    def _submit_round(self) -> tuple[int, InFlight]:
        """Claim and send every signer's queued work; give the count and what is in flight."""
        depth = self.alliance.settings.confirmations
        if depth > 0:
            with self.alliance.store.session() as s:
                outbox_repos.promote_confirmed(
                    s, max_block=self.alliance.gateway.block_number() - depth)
        with self.alliance.store.read_session() as s:
            merchant_ids = outbox_repos.merchants_with_queued(s)
        done = 0
        in_flight: InFlight = []
        for merchant_id in merchant_ids:
            n, sent = self._submit_merchant(merchant_id)
            done += n
            in_flight.extend(sent)
        return done, in_flight

    def _settle_round(self, in_flight: InFlight) -> None:
        for sender, program_address, group, tx in in_flight:
            try:
                if not self._settle(sender, [g[0] for g in group], tx):
                    self._isolate(sender, program_address, group)
            except ChainError as exc:
                # The node failed while a reverted batch was being split: what was not sent
                # again goes back to the queue (not left claimed until a restart), and the
                # round goes on with the other transactions.
                log.warning("settling %s failed (%s); its unsent operations are requeued",
                            tx.tx_hash, exc.message)
                self._requeue_claimed([g[0] for g in group], exc)

    def _requeue_claimed(self, op_ids: list[str], exc: LedgerError) -> None:
        with self.alliance.store.session() as s:
            claimed = [i for i in op_ids
                       if (op := outbox_repos.get_operation(s, i)) is not None
                       and op.status == "sending"]
            if claimed:
                outbox_repos.requeue_operations(s, claimed, error_code=exc.code)

    def _sender(self, merchant_id: int) -> TransactionSender:
        sender = self._senders.get(merchant_id)
        if sender is None:
            key = merchant_signing_key(self.alliance, merchant_id)
            sender = self.alliance.sender_for_key(key)
            self._senders[merchant_id] = sender
        return sender

    def _submit_merchant(self, merchant_id: int) -> tuple[int, InFlight]:
        """Claim a merchant's queued operations and send them; give how many were claimed and
        the transactions in flight.

        Two write transactions per round, whatever the number of batches: one claims the
        operations and reserves their nonces, one records every signed transaction; only then
        is anything broadcast (so a crash leaves nothing sent that is not recorded)."""
        limit = self.alliance.settings.batch_max
        sender = self._sender(merchant_id)
        nonces = sender.nonces
        assert isinstance(nonces, StoreNonces)  # every signer from Alliance.sender_for_key
        with self.alliance.store.session() as s:
            ops = outbox_repos.claim_operations(s, merchant_id=merchant_id,
                                         max_lines=limit * PIPELINE_TXS)
            claimed = [(op.id, op.kind, dict(op.payload)) for op in ops]
            program = merchant_repos.get_merchant(s, merchant_id)
            assert program is not None and program.program_address is not None
            program_address = program.program_address
            if not claimed:
                return 0, []
            # Issues share one issueBatch call, redemptions one redeemBatch per program, up to
            # batch_max lines; everything else goes alone.
            prepared = [(group, *self._calldata(program_address, group), gas_bound(group))
                        for group in group_operations(claimed, program_address, limit)]
            first = nonces.reserve_in(s, len(prepared))
        signed = [(group, sender.sign(to=to, data=data, gas=gas, nonce=first + i))
                  for i, (group, to, data, gas) in enumerate(prepared)]
        with self.alliance.store.session() as s:
            for group, sent in signed:
                self._record(s, sender, group, sent)
        in_flight = []
        for group, sent in signed:
            self._broadcast(sender, sent)
            in_flight.append((sender, program_address, group, sent))
        return len(claimed), in_flight

    def _record(self, s: Session, sender: TransactionSender, group: Group, sent: SentTx
                ) -> None:
        outbox_repos.record_submission(s, op_ids=[g[0] for g in group],
                                chain_id=self.alliance.gateway.chain_id, signer=sender.address,
                                tx_hash=sent.tx_hash, nonce=sent.nonce, raw="0x" + sent.raw.hex(),
                                max_fee=sent.max_fee, priority_fee=sent.priority_fee)

    @staticmethod
    def _broadcast(sender: TransactionSender, sent: SentTx) -> None:
        try:
            sender.broadcast(sent)
        except ChainError as exc:
            # Recorded but not accepted: the recovery pass rebroadcasts or replaces it.
            log.warning("broadcast of %s failed (%s); will retry", sent.tx_hash, exc)

    # ------------------------------------------------------------------ submit / settle

    def _calldata(self, program_address: str, group: Sequence[tuple[str, str, dict[str, Any]]]
                  ) -> tuple[str, bytes]:
        """The (target, calldata) of a group's transaction."""
        contracts = self.alliance.contracts
        kind = group[0][1]
        if kind in ISSUE_KINDS:
            program = contracts.program(program_address)
            items = [IssueItem(line["member"], int(line["points"]),
                               bytes.fromhex(line["order_ref"][2:]), int(line["release_at"]))
                     for _, _, p in group for line in p["items"]]
            return program.address, program.encode_issue_batch(items)
        if kind in REDEEM_KINDS:
            program = contracts.program(str(group[0][2]["program"]))
            lines = [(Redemption(line["member"], int(line["points"]), int(line["merchant_id"]),
                                 bytes.fromhex(line["order_ref"][2:]), int(line["nonce"]),
                                 int(line["deadline"])), bytes.fromhex(line["signature"][2:]))
                     for _, _, p in group for line in p["items"]]
            if len(lines) == 1:
                r, sig = lines[0]
                return program.address, program.encode("redeem", r.as_tuple(), sig)
            return program.address, program.encode_redeem_batch(lines)
        (_, _, p), = group
        if kind == "reverse":
            program = contracts.program(program_address)
            return program.address, program.encode(
                "reverse", bytes.fromhex(p["order_ref"][2:]), int(p["points"]))
        if kind == "convert":
            program = contracts.program(str(p["program"]))
            c = Conversion(p["member"], int(p["points"]), int(p["merchant_id"]),
                           int(p["min_out"]), bytes.fromhex(p["order_ref"][2:]), int(p["nonce"]),
                           int(p["deadline"]))
            return program.address, program.encode("convert", c.as_tuple(),
                                                    bytes.fromhex(p["signature"][2:]))
        if kind == "refund_redemption":
            program = contracts.program(str(p["program"]))
            return program.address, program.encode(
                "refundRedemption", int(p["merchant_id"]),
                bytes.fromhex(p["order_ref"][2:]), int(p["points"]))
        if kind == "cancel_nonces":
            program = contracts.program(str(p["program"]))
            return program.address, program.encode(
                "cancelNonces", p["member"], int(p["word_pos"]), int(p["mask"], 16),
                int(p["deadline"]), bytes.fromhex(p["signature"][2:]))
        if kind == SWEEP_KIND:
            program = contracts.program(str(p["program"]))
            return program.address, program.encode("sweepExpired", list(p["items"]))
        if kind == "deposit":
            return deposit_calldata(self.alliance, p)
        if kind == "confirm_payment":
            return confirm_payment_calldata(self.alliance, p)
        raise LedgerError(f"unknown operation kind {kind}")

    def _isolate(self, sender: TransactionSender, program_address: str,
                 group: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Send a group that failed again, simulating first, bisecting so only the
        operations that revert on their own fail (each with the Solidity error's name)."""
        sent = self._submit(sender, program_address, group, simulate=True)
        if sent is not None:
            self._settle(sender, [g[0] for g in group], sent)

    def _name_line(self, sender: TransactionSender, program_address: str,
                   op: tuple[str, str, dict[str, Any]], exc: ContractRevertError
                   ) -> ContractRevertError:
        """The revert of a many-line operation (sent all or none), named after its first
        offending line: the shortest failing prefix of its lines, found in log2(lines)
        simulations (a revert aborts every longer prefix, so failing is monotone)."""
        op_id, kind, payload = op
        items = payload.get("items") or []
        if kind not in ISSUE_KINDS + REDEEM_KINDS or len(items) < 2:
            return exc
        lo, hi, culprit = 1, len(items), exc
        while lo < hi:
            mid = (lo + hi) // 2
            prefix = {**payload, "items": items[:mid]}
            try:
                sender.estimate(*self._calldata(program_address, [(op_id, kind, prefix)]))
                lo = mid + 1
            except ContractRevertError as err:
                hi, culprit = mid, err
        line = items[hi - 1]
        return ContractRevertError(
            culprit.name, culprit.args_,
            message=f"items[{hi - 1}] (member {line.get('member')}, order "
                    f"{line.get('order_id')}): {culprit.message}",
            index=hi - 1)

    def _submit(self, sender: TransactionSender, program_address: str,
                group: list[tuple[str, str, dict[str, Any]]], *, simulate: bool
                ) -> SentTx | None:
        """Record, then broadcast one group (simulated first when ``simulate``)."""
        to, data = self._calldata(program_address, group)
        gas = gas_bound(group)
        if simulate:
            try:
                gas = sender.estimate(to, data)
            except ContractRevertError as exc:
                if len(group) == 1:
                    self._fail([group[0][0]], self._name_line(sender, program_address,
                                                              group[0], exc))
                    return None
                mid = len(group) // 2
                self._isolate(sender, program_address, group[:mid])
                self._isolate(sender, program_address, group[mid:])
                return None
        sent = sender.sign(to=to, data=data, gas=gas)
        with self.alliance.store.session() as s:
            self._record(s, sender, group, sent)
        self._broadcast(sender, sent)
        return sent

    def _settle(self, sender: TransactionSender, op_ids: list[str], sent: SentTx) -> bool:
        """Wait for a transaction; mark its operations confirmed. On a revert, give False
        with the operations marked for another attempt (the caller isolates the culprit)."""
        try:
            receipt = sender.wait(sent)
        except ContractRevertError as exc:
            log.info("tx %s reverted with %s; retrying its %d operations with simulation",
                     sent.tx_hash, exc.name, len(op_ids))
            with self.alliance.store.session() as s:
                outbox_repos.requeue_operations(s, op_ids, error_code=exc.name, status="sending")
            return False
        with self.alliance.store.session() as s:
            outbox_repos.confirm_operations(s, op_ids, tx_hash=str(receipt["transactionHash"]),
                                     block_number=int(receipt["blockNumber"]),
                                     final=self.alliance.settings.confirmations == 0)
        return True

    def _fail(self, op_ids: list[str], exc: LedgerError) -> None:
        name = exc.name if isinstance(exc, ContractRevertError) else exc.code
        log.info("operations %s failed: %s", op_ids, exc.message)
        with self.alliance.store.session() as s:
            outbox_repos.fail_operations(s, op_ids, error_code=name, error_message=exc.message)

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Settle or resend what a crash left behind (see the module docstring)."""
        with self.alliance.store.session() as s:
            outbox_repos.requeue_sending(s)
            in_flight = [(t.tx_hash, t.signer, t.nonce, t.raw, t.max_fee, t.priority_fee,
                          list(t.op_ids)) for t in outbox_repos.unsettled_transactions(s)]
        by_signer: dict[str, list[Any]] = defaultdict(list)
        for row in in_flight:
            by_signer[row[1]].append(row)
        for signer, rows in by_signer.items():
            rows.sort(key=lambda r: r[2])
            for tx_hash, _, nonce, raw, max_fee, prio, op_ids in rows:
                receipt = self.alliance.gateway.receipt(tx_hash)
                if receipt is None and self.alliance.gateway.transaction(tx_hash) is None:
                    log.warning("rebroadcasting %s (nonce %d) left by a crash", tx_hash, nonce)
                    try:
                        self.alliance.gateway.send_raw(bytes.fromhex(raw[2:]))
                    except ChainError as exc:
                        log.warning("rebroadcast failed: %s; operations requeued", exc)
                        with self.alliance.store.session() as s:
                            outbox_repos.requeue_operations(
                                s, op_ids, error_code="rebroadcast-failed")
                        continue
                sent = SentTx(tx_hash, nonce, bytes.fromhex(raw[2:]), None, b"", 0, max_fee,
                              prio, time.monotonic())
                self._settle_recovered(op_ids, sent)
            self._resync_nonces(signer)
        # A crash between reserving a nonce and recording its transaction leaves a gap that
        # would stall every later transaction: every merchant signer restarts from the node.
        with self.alliance.store.session() as s:
            signers = {m.account_address for m in merchant_repos.list_merchants(s)}
        for signer in signers - set(by_signer):
            self._resync_nonces(signer)

    def _settle_recovered(self, op_ids: list[str], sent: SentTx) -> None:
        deadline = time.monotonic() + self.alliance.settings.receipt_timeout_s
        while time.monotonic() < deadline:
            receipt = self.alliance.gateway.receipt(sent.tx_hash)
            if receipt is not None:
                with self.alliance.store.session() as s:
                    if int(receipt.get("status", 0)) == 1:
                        outbox_repos.confirm_operations(
                            s, op_ids, tx_hash=sent.tx_hash,
                            block_number=int(receipt["blockNumber"]),
                            final=self.alliance.settings.confirmations == 0)
                    else:
                        outbox_repos.requeue_operations(s, op_ids, error_code="reverted")
                return
            time.sleep(0.05)
        log.warning("recovered tx %s still unmined; left for the next start", sent.tx_hash)

    def _resync_nonces(self, signer: str) -> None:
        StoreNonces(self.alliance.store, self.alliance.gateway, signer).resync()
