"""Operation kinds: what the outbox knows of each thing it sends, and nothing more.

An :class:`OperationKind` says, for one kind of operation: its name (the ``operations.kind``
column), its payload type (a frozen dataclass, validated when built, written to the JSON
column once and parsed back typed), its batch key (operations with the same key share one
transaction), its gas bound, how a group of payloads becomes one call ``(to, data)``, how many
lines a payload has, and how a many-line payload is cut to a prefix so a revert can be traced
to its first offending line. Capabilities define their kinds next to their code
(``ledger/points/kinds.py``, ``ledger/clearing/kinds.py``); the composition root
(``ledger/runtime.py``) puts them in a :class:`KindRegistry` handed to the worker, which
imports no capability.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

from ..chain.sender import StoreSender
from ..deployment import Contracts
from ..errors import LedgerError, LedgerValidationError
from ..store.models import OperationStatus

__all__ = ["Call", "Claimed", "Group", "KindRegistry", "OperationKind", "OperationStatus",
           "Payload", "Signer", "hex_bytes", "parse_hex"]


class Payload(Protocol):
    """An operation's typed payload: a frozen dataclass written to the JSON column once."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``operations.payload``."""
        ...

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The payload back from its stored JSON."""
        ...


P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class Call:
    """A transaction's target and calldata."""

    to: str
    data: bytes


class OperationKind(ABC, Generic[P]):
    """One kind of operation. Subclasses give the payload type, the gas bound and the
    encoder; the rest has defaults for a one-line operation sent on its own."""

    payload_type: type[P]

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<OperationKind {self.name}>"

    # ---------------------------------------------------------------- payload

    def parse(self, data: Mapping[str, Any]) -> P:
        """The typed payload of a stored JSON object."""
        return self.payload_type.from_json(data)

    def dump(self, payload: P) -> dict[str, Any]:
        """The JSON object of a payload (refused if it is not this kind's payload type)."""
        if not isinstance(payload, self.payload_type):
            raise LedgerValidationError(
                f"a {self.name} operation takes a {self.payload_type.__name__}, not a "
                f"{type(payload).__name__}")
        return payload.to_json()

    def lines(self, payload: P) -> int:
        """How many lines the payload holds (what a batch's line limit counts)."""
        return 1

    # ---------------------------------------------------------------- sending

    def batch_key(self, payload: P, home: str | None) -> Hashable | None:
        """Operations with the same key share one transaction (None: sent alone). Kinds
        sharing a key must encode each other's payloads (the group is encoded by the kind of
        its first operation). ``home`` is the signer's own contract."""
        return None

    @abstractmethod
    def gas_bound(self, payloads: Sequence[P]) -> int:
        """An upper bound of the gas of the transaction carrying these payloads."""

    @abstractmethod
    def encode(self, contracts: Contracts, home: str | None, payloads: Sequence[P]) -> Call:
        """The call carrying these payloads (one unless the kind batches)."""

    # ---------------------------------------------------------------- reverts

    def prefix(self, payload: P, lines: int) -> P | None:
        """The payload cut to its first ``lines`` lines, or None if the kind sends its lines
        as a whole that cannot be cut (then a revert is not traced to one line)."""
        return None

    def describe_line(self, payload: P, index: int) -> str:
        """How a line is named in the error of a revert traced to it."""
        return f"items[{index}]"


class KindRegistry:
    """The operation kinds a worker can send, by name."""

    def __init__(self, kinds: Iterable[OperationKind[Any]] = ()) -> None:
        self._kinds: dict[str, OperationKind[Any]] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: OperationKind[Any]) -> None:
        if kind.name in self._kinds:
            raise LedgerError(f"operation kind {kind.name} is registered twice")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> OperationKind[Any]:
        kind = self._kinds.get(name)
        if kind is None:
            raise LedgerError(f"unknown operation kind {name!r} (known: "
                              f"{', '.join(sorted(self._kinds)) or 'none'})", kind=name)
        return kind

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, OperationKind) and self._kinds.get(kind.name) is kind

    def __iter__(self) -> Iterator[OperationKind[Any]]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)


@dataclass(frozen=True)
class Signer:
    """Who sends a merchant's operations: its sender (nonces kept in the store) and its own
    contract, ``home`` (where kinds that name no target send: its point program)."""

    merchant_id: int
    sender: StoreSender
    home: str | None


@dataclass(frozen=True)
class Claimed:
    """An operation claimed by the worker, its payload parsed."""

    op_id: str
    kind: OperationKind[Any]
    payload: Any

    @property
    def lines(self) -> int:
        return self.kind.lines(self.payload)


@dataclass(frozen=True)
class Group:
    """Operations that travel in one transaction (their kinds share a batch key)."""

    ops: tuple[Claimed, ...]

    @property
    def kind(self) -> OperationKind[Any]:
        return self.ops[0].kind

    @property
    def op_ids(self) -> list[str]:
        return [c.op_id for c in self.ops]

    @property
    def lines(self) -> int:
        return sum(c.lines for c in self.ops)

    def payloads(self) -> list[Any]:
        return [c.payload for c in self.ops]

    def call(self, contracts: Contracts, home: str | None) -> Call:
        return self.kind.encode(contracts, home, self.payloads())

    def gas_bound(self) -> int:
        return int(self.kind.gas_bound(self.payloads()))

    def split(self) -> tuple[Group, Group]:
        mid = len(self.ops) // 2
        return Group(self.ops[:mid]), Group(self.ops[mid:])


# ---------------------------------------------------------------------- payload helpers


def hex_bytes(value: bytes) -> str:
    """Bytes as stored in a payload: ``0x`` and lowercase hex."""
    return "0x" + value.hex()


def parse_hex(value: Any, field: str, *, size: int | None = None) -> bytes:
    """Bytes from a payload's ``0x`` hex string (of ``size`` bytes when given)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise LedgerValidationError(f"{field} must be 0x hex", field=field)
    try:
        out = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise LedgerValidationError(f"{field} must be 0x hex", field=field) from exc
    if size is not None and len(out) != size:
        raise LedgerValidationError(f"{field} must be {size} bytes", field=field)
    return out
