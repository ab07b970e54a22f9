"""The outbox on its own: a registry of a FAKE operation kind (the layer above the subject),
a real store (SQLite) and a real anvil below it.

The fake kind's payload is a list of numbers; its operations share one call of a tiny test
contract (tests/contracts/fixtures/OutboxProbe.sol, compiled by the real compiler) that adds
them, all or none, and refuses 13 with ``ProbeNumberRefused``. Also here: every kind the
service registers round-trips its payload through the JSON column (generated over the
registry, so a new kind is covered without editing this file).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
import types
import typing
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from ledger.alliance import Alliance
from ledger.chain.gateway import error_selectors
from ledger.contracts.client import ContractClient
from ledger.contracts.compiler import compile_sources
from ledger.deployment import Contracts
from ledger.errors import LedgerError, LedgerValidationError
from ledger.outbox import repos as outbox
from ledger.outbox.kinds import Call, KindRegistry, OperationKind, Signer
from ledger.outbox.worker import OutboxWorker
from ledger.runtime import operation_kinds
from ledger.settings import Settings
from ledger.store.models import Merchant, OperationStatus

from .ledger_fixtures import _alliance

FIXTURE = Path(__file__).resolve().parents[1] / "contracts" / "fixtures" / "OutboxProbe.sol"
MERCHANT_ID = 9001
BATCH_MAX = 4


# ---------------------------------------------------------------------- the fake kind


@dataclass(frozen=True)
class Numbers:
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.values or any(not isinstance(v, int) or v < 0 for v in self.values):
            raise LedgerValidationError("numbers are non-negative integers", field="values")

    def to_json(self) -> dict[str, Any]:
        return {"items": list(self.values)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Numbers:
        return cls(tuple(data["items"]))


class AddKind(OperationKind[Numbers]):
    """Numbers added by ``OutboxProbe.add``; batched under one key unless ``alone``."""

    payload_type = Numbers

    def __init__(self, name: str, probe: ContractClient, *, alone: bool = False) -> None:
        super().__init__(name)
        self.probe = probe
        self.alone = alone

    def lines(self, payload: Numbers) -> int:
        return len(payload.values)

    def batch_key(self, payload: Numbers, home: str | None) -> Hashable | None:
        return None if self.alone else ("add", self.probe.address)

    def gas_bound(self, payloads: Sequence[Numbers]) -> int:
        return 60_000 + 30_000 * sum(len(p.values) for p in payloads)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[Numbers]) -> Call:
        values = [v for p in payloads for v in p.values]
        return Call(self.probe.address, self.probe.encode("add", values))

    def prefix(self, payload: Numbers, lines: int) -> Numbers:
        return replace(payload, values=payload.values[:lines])

    def describe_line(self, payload: Numbers, index: int) -> str:
        return f"values[{index}] ({payload.values[index]})"


@dataclass
class Rig:
    alliance: Alliance
    probe: ContractClient
    add: AddKind
    add_alone: AddKind
    signer: Signer

    def worker(self) -> OutboxWorker:
        return OutboxWorker(self.alliance, registry=KindRegistry([self.add, self.add_alone]),
                            signer_for=lambda merchant_id: self.signer)

    def enqueue(self, *values: int, kind: AddKind | None = None) -> str:
        with self.alliance.store.session() as s:
            return outbox.enqueue(s, kind=kind or self.add, payload=Numbers(values),
                                  merchant_id=MERCHANT_ID, signer=self.signer.sender.address).id

    def status(self, op_id: str) -> tuple[OperationStatus, str | None, str | None]:
        with self.alliance.store.read_session() as s:
            op = outbox.get_operation(s, op_id)
            assert op is not None
            return op.status, op.error_code, op.error_message

    def transactions(self) -> list[int]:
        """Lines of the signer's recorded transactions, in nonce order."""
        with self.alliance.store.read_session() as s:
            return [t.lines for t in outbox.transactions_of(s, signer=self.signer.sender.address)]


@pytest.fixture(scope="module")
def probe_artifact() -> Any:
    return compile_sources({"tests/contracts/fixtures/OutboxProbe.sol":
                            FIXTURE.read_text()})["OutboxProbe"]


@pytest.fixture
def rig(settings: Settings, probe_artifact: Any) -> Iterator[Rig]:
    for alliance in _alliance(settings, batch_max=BATCH_MAX):
        gw = alliance.gateway
        gw.add_error_abis(error_selectors([probe_artifact.abi]))
        receipt = alliance.operator.transact(
            to=None, data=gw.encode_deploy(probe_artifact.abi, probe_artifact.bytecode, []))
        probe = ContractClient(gw, probe_artifact.abi, str(receipt["contractAddress"]))
        key = Account.create().key
        sender = alliance.sender_for_key(bytes(key))
        gw.rpc("anvil_setBalance", [sender.address, hex(10**20)])
        with alliance.store.session() as s:
            s.add(Merchant(id=MERCHANT_ID, name="probe", account_address=sender.address,
                           signing_key_enc=b""))
        yield Rig(alliance, probe, AddKind("add", probe), AddKind("add_alone", probe, alone=True),
                  Signer(MERCHANT_ID, sender, None))


# ---------------------------------------------------------------------- the worker


def test_operations_share_a_transaction_by_batch_key_up_to_the_line_limit(rig: Rig) -> None:
    ids = [rig.enqueue(i, i + 1) for i in range(1, 10, 2)]  # five operations of two lines
    alone = rig.enqueue(100, kind=rig.add_alone)
    assert rig.worker().process_once() == 6
    # Claimed in order: 2+2 lines, 2+2, 2, then the unbatched one on its own.
    assert rig.transactions() == [4, 4, 2, 1]
    for op_id in [*ids, alone]:
        assert rig.status(op_id)[0] is OperationStatus.CONFIRMED
    assert rig.probe.view1("total") == sum(range(1, 11)) + 100
    assert rig.probe.view1("added", rig.signer.sender.address) == 11


def test_a_revert_fails_only_the_offending_operation_named_after_its_line(rig: Rig) -> None:
    # Four lines, one transaction: it reverts as a whole.
    first, bad, last = rig.enqueue(1), rig.enqueue(4, 13), rig.enqueue(6)
    rig.worker().drain()
    assert rig.transactions()[0] == 4
    status, code, message = rig.status(bad)
    assert status is OperationStatus.FAILED
    assert code == "ProbeNumberRefused"
    # Bisection over the operation's lines names the first offending one.
    assert message is not None and message.startswith("values[1] (13): ")
    for op_id in (first, last):
        assert rig.status(op_id)[0] is OperationStatus.CONFIRMED
    assert rig.probe.view1("total") == 1 + 6


def test_an_operation_of_an_unregistered_kind_fails_alone_with_a_clear_error(rig: Rig) -> None:
    stray = AddKind("not_registered", rig.probe)
    odd = rig.enqueue(7, kind=stray)
    fine = rig.enqueue(8)
    rig.worker().drain()
    status, code, message = rig.status(odd)
    assert (status, code) == (OperationStatus.FAILED, "unknown-kind")
    assert message is not None and "not_registered" in message
    assert rig.status(fine)[0] is OperationStatus.CONFIRMED


def test_enqueue_refuses_a_payload_of_another_type(rig: Rig) -> None:
    with rig.alliance.store.session() as s, pytest.raises(LedgerValidationError):
        outbox.enqueue(s, kind=rig.add, payload=("not", "numbers"),  # type: ignore[arg-type]
                       merchant_id=MERCHANT_ID, signer=rig.signer.sender.address)
    with rig.alliance.store.read_session() as s:
        assert outbox.count_operations(s) == 0


def test_the_registry_refuses_duplicates_and_names_an_unknown_kind() -> None:
    kinds = operation_kinds()
    first = next(iter(kinds))
    with pytest.raises(LedgerError, match="twice"):
        kinds.register(first)
    with pytest.raises(LedgerError, match="unknown operation kind 'nope'"):
        kinds.get("nope")
    assert kinds.get(first.name) is first


def test_statuses_move_through_queued_sending_submitted_confirmed(rig: Rig) -> None:
    seen: list[OperationStatus] = []

    class Watched(OutboxWorker):
        def _parse(self, op: Any) -> Any:
            seen.append(op.status)  # the row as the claim left it
            return super()._parse(op)

        def _broadcast_round(self, sender: Any, sents: Any) -> Any:  # type: ignore[override]
            seen.append(rig.status(op_id)[0])  # recorded before it is broadcast
            return OutboxWorker._broadcast_round(sender, sents)

    op_id = rig.enqueue(5)
    assert rig.status(op_id)[0] is OperationStatus.QUEUED
    Watched(rig.alliance, registry=KindRegistry([rig.add]),
            signer_for=lambda _: rig.signer).process_once()
    seen.append(rig.status(op_id)[0])
    assert seen == [OperationStatus.SENDING, OperationStatus.SUBMITTED,
                    OperationStatus.CONFIRMED]
    assert all(type(s) is OperationStatus for s in seen)


class CountingParse(AddKind):
    """An AddKind that counts the payloads it parses back from their JSON column."""

    def __init__(self, name: str, probe: ContractClient) -> None:
        super().__init__(name, probe)
        self.parsed = 0

    def parse(self, data: Mapping[str, Any]) -> Numbers:
        self.parsed += 1
        return super().parse(data)


def test_the_worker_sends_the_payload_its_process_queued_without_parsing_it_again(
        rig: Rig) -> None:
    kind = CountingParse("add", rig.probe)
    ids = [rig.enqueue(3, 4, kind=kind), rig.enqueue(5, kind=kind)]
    OutboxWorker(rig.alliance, registry=KindRegistry([kind]),
                 signer_for=lambda _: rig.signer).drain()
    assert kind.parsed == 0
    assert [rig.status(i)[0] for i in ids] == [OperationStatus.CONFIRMED] * 2
    assert rig.probe.view1("total") == 12
    assert [outbox.QUEUED_PAYLOADS.take(i, "add") for i in ids] == [None, None]  # given once


def test_an_operation_another_process_queued_is_read_from_its_column(rig: Rig) -> None:
    kind = CountingParse("add", rig.probe)
    held, elsewhere = rig.enqueue(1, 2, kind=kind), rig.enqueue(40, kind=kind)
    assert outbox.QUEUED_PAYLOADS.take(elsewhere, "add") == Numbers((40,))  # not held here
    OutboxWorker(rig.alliance, registry=KindRegistry([kind]),
                 signer_for=lambda _: rig.signer).drain()
    assert kind.parsed == 1
    assert [rig.status(i)[0] for i in (held, elsewhere)] == [OperationStatus.CONFIRMED] * 2
    assert rig.probe.view1("total") == 43


def test_queued_payloads_are_bounded_in_lines_oldest_out_given_once_and_by_kind() -> None:
    held = outbox.QueuedPayloads(max_lines=5)
    held.put("a", "add", Numbers((1, 2)), 2)
    held.put("b", "add", Numbers((3, 4)), 2)
    held.put("c", "add", Numbers((5, 6)), 2)  # 6 lines: the oldest goes
    assert held.take("a", "add") is None
    assert held.take("b", "other") is None  # another kind's name: not this payload
    assert held.take("b", "add") is None  # (given once, even when refused)
    assert held.take("c", "add") == Numbers((5, 6))
    assert held.take("c", "add") is None
    assert len(held) == 0
    held.put("d", "add", Numbers((7,) * 9), 9)  # larger than the bound: not kept
    assert len(held) == 0


def test_a_signer_whose_round_sent_less_than_a_batch_gathers_for_the_batch_window(
        rig: Rig) -> None:
    worker = rig.worker()
    worker.gather_s = 1.5  # (batch_window_ms; long enough for a loaded machine's rounds)
    first = rig.enqueue(1)
    assert worker.step() >= 1  # nothing sent lately: at once
    second = rig.enqueue(2)
    worker.step()
    assert rig.status(second)[0] is OperationStatus.QUEUED  # gathering
    time.sleep(1.6)
    worker.step()
    assert rig.status(second)[0] in (OperationStatus.SUBMITTED, OperationStatus.CONFIRMED)
    # A batch's worth queued meanwhile goes at once.
    full = [rig.enqueue(20 + i) for i in range(BATCH_MAX)]
    worker.step()
    assert all(rig.status(i)[0] is not OperationStatus.QUEUED for i in full)
    for _ in range(50):
        if worker.step() == 0 and not worker.in_flight:
            break
        time.sleep(0.05)
    assert [rig.status(i)[0] for i in [first, second, *full]] == [OperationStatus.CONFIRMED] * 6
    assert rig.probe.view1("total") == 1 + 2 + sum(20 + i for i in range(BATCH_MAX))
    assert rig.transactions() == [1, 1, BATCH_MAX]


def test_a_transaction_recorded_but_never_broadcast_is_rebroadcast_on_recovery(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    op_id = rig.enqueue(40, 2)

    class Crash(BaseException):
        pass

    def crash(*args: object) -> None:
        raise Crash

    monkeypatch.setattr(OutboxWorker, "_broadcast_round", staticmethod(crash))
    with pytest.raises(Crash):
        rig.worker().process_once()
    monkeypatch.undo()
    assert rig.status(op_id)[0] is OperationStatus.SUBMITTED
    assert rig.probe.view1("total") == 0
    worker = rig.worker()
    worker.recover()  # the restart: the recorded raw transaction goes out, once
    worker.drain()
    assert rig.status(op_id)[0] is OperationStatus.CONFIRMED
    assert rig.probe.view1("total") == 42
    assert rig.transactions() == [2]


# ---------------------------------------------------------------------- every kind's payload


def _addresses() -> st.SearchStrategy[str]:
    return st.binary(min_size=20, max_size=20).map(to_checksum_address)


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    """Values of a payload field's type: dataclasses field by field, tuples, and the leaf
    types payloads use (ints in every field's range, text as addresses, 32-byte values)."""
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.builds(tp, **{f.name: _strategy(hints[f.name])
                                for f in dataclasses.fields(tp) if f.init})
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_strategy(args[0]), min_size=1, max_size=4).map(tuple)
        return st.tuples(*(_strategy(a) for a in args))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_strategy(a) for a in typing.get_args(tp)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    leaves: dict[Any, st.SearchStrategy[Any]] = {
        bool: st.booleans(), int: st.integers(0, 2**24 - 1), str: _addresses(),
        bytes: st.binary(min_size=32, max_size=32), type(None): st.none()}
    assert tp in leaves, f"no strategy for payload field type {tp!r}: add one here"
    return leaves[tp]


@pytest.mark.parametrize("kind", list(operation_kinds()), ids=lambda k: k.name)
def test_every_registered_kind_round_trips_its_payload(kind: OperationKind[Any]) -> None:
    @examples(max_examples=25, deadline=None)
    @given(_strategy(kind.payload_type))
    def round_trip(payload: Any) -> None:
        stored = json.loads(json.dumps(kind.dump(payload)))  # as the JSON column keeps it
        assert kind.parse(stored) == payload
        assert kind.dump(kind.parse(stored)) == stored
        assert kind.lines(payload) >= 1

    round_trip()


MEMBER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROGRAM = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REF = "0x" + "ab" * 32


@pytest.mark.parametrize(("kind_name", "stored", "written_back"), [
    # An issue line stored before pending points existed has no release_at: it reads as 0.
    ("issue", {"items": [{"member": MEMBER, "points": 5, "order_id": "A-1", "order_ref": REF}]},
     {"items": [{"member": MEMBER, "points": 5, "order_id": "A-1", "order_ref": REF,
                 "release_at": 0}]}),
    ("issue", {"items": [{"member": MEMBER, "points": 5, "order_id": "A-1", "order_ref": REF,
                          "release_at": None}]},
     {"items": [{"member": MEMBER, "points": 5, "order_id": "A-1", "order_ref": REF,
                 "release_at": 0}]}),
    # A mask past 2^53 is hex text, so JSON never rounds it.
    ("cancel_nonces", {"program": PROGRAM, "program_merchant_id": 1, "member": MEMBER,
                       "word_pos": 0, "mask": hex(2**200 + 1), "deadline": 1_900_000_000,
                       "signature": "0x" + "cd" * 65}, None),
    ("sweep_expired", {"program": PROGRAM, "items": [MEMBER], "periods": [3, 4]}, None),
    ("deposit", {"to": PROGRAM, "period": 2, "amount": 5_000}, None),
])
def test_operations_stored_by_earlier_versions_read_back_the_same(
        kind_name: str, stored: dict[str, Any], written_back: dict[str, Any] | None) -> None:
    kind = operation_kinds().get(kind_name)
    payload = kind.parse(stored)
    assert kind.dump(payload) == (written_back or stored)
    if kind_name == "cancel_nonces":
        assert payload.mask == 2**200 + 1


@pytest.mark.parametrize(("stored", "field"), [
    ({"items": [{"member": "0x12", "points": 5, "order_id": "A", "order_ref": REF}]}, "member"),
    ({"items": [{"member": MEMBER, "points": -1, "order_id": "A", "order_ref": REF}]}, "points"),
    ({"items": [{"member": MEMBER, "points": True, "order_id": "A", "order_ref": REF}]},
     "points"),
    ({"items": [{"member": MEMBER, "points": 5, "order_id": "A", "order_ref": "0xab"}]},
     "order_ref"),
    ({"items": [{"member": MEMBER, "points": 5, "order_ref": REF}]}, "order_id"),
    ({"items": []}, "items"),
])
def test_a_stored_payload_that_does_not_check_is_refused_by_field(
        stored: dict[str, Any], field: str) -> None:
    with pytest.raises(LedgerValidationError) as err:
        operation_kinds().get("issue").parse(stored)
    assert err.value.details.get("field") == field
