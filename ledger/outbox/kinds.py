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
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import (
    Annotated,
    Any,
    Generic,
    Protocol,
    Self,
    TypeVar,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)

from ..chain.sender import StoreSender
from ..deployment import Contracts
from ..errors import LedgerError, LedgerValidationError
from ..store.models import OperationStatus

__all__ = ["Call", "Claimed", "Group", "JsonPayload", "KindRegistry", "OperationKind",
           "NonEmpty", "OperationStatus", "Payload", "Signer", "hex_bytes", "parse_hex"]


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


# ---------------------------------------------------------------------- the payload codec


class FieldCodec:
    """How one payload field is checked when the payload is built, written to the JSON
    column and read back."""

    def check(self, value: Any, field: str) -> None:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def load(self, raw: Any, field: str) -> Any:
        return raw

    def identity_load(self) -> bool:
        """Whether :meth:`load` gives the stored value itself (the codec's check, run when
        the payload is built, is then its only validation)."""
        return type(self).load is FieldCodec.load


@dataclass(frozen=True)
class Uint(FieldCodec):
    """An unsigned integer of ``bits`` bits (``as_hex``: stored as hex text, for values that
    a JSON number would round, past 2^53)."""

    bits: int = 256
    as_hex: bool = False
    _end: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_end", 2**self.bits)  # (2**256 was computed per value)

    def check(self, value: Any, field: str) -> None:
        if (type(value) is int or isinstance(value, int) and not isinstance(value, bool)) \
                and 0 <= value < self._end:
            return
        raise LedgerValidationError(
            f"{field} must be an integer of 0 to 2^{self.bits} - 1", field=field)

    def identity_load(self) -> bool:
        return not self.as_hex

    def dump(self, value: Any) -> Any:
        return hex(value) if self.as_hex else value

    def load(self, raw: Any, field: str) -> Any:
        if not self.as_hex:
            return raw
        try:
            return int(raw, 16)
        except (TypeError, ValueError) as exc:
            raise LedgerValidationError(f"{field} must be hex text", field=field) from exc


class _Address(FieldCodec):
    def check(self, value: Any, field: str) -> None:
        if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
            raise LedgerValidationError(f"{field} must be an address", field=field)


class _Text(FieldCodec):
    def check(self, value: Any, field: str) -> None:
        if not isinstance(value, str):
            raise LedgerValidationError(f"{field} must be text", field=field)


@dataclass(frozen=True)
class Hex(FieldCodec):
    """Bytes (of ``size`` bytes when given), stored as ``0x`` hex."""

    size: int | None = None

    def check(self, value: Any, field: str) -> None:
        if not isinstance(value, bytes) or (self.size is not None and len(value) != self.size):
            raise LedgerValidationError(f"{field} must be {self.size or 'some'} bytes",
                                        field=field)

    def dump(self, value: Any) -> Any:
        return hex_bytes(value)

    def load(self, raw: Any, field: str) -> Any:
        return parse_hex(raw, field, size=self.size)


@dataclass(frozen=True)
class Many(FieldCodec):
    """A tuple of values of one codec (``length``: exactly that many; ``least``: at least that
    many, or ``empty`` is the error), stored as a JSON list. A tuple of payloads (the lines of
    a many-line operation) needs no annotation."""

    each: FieldCodec
    length: int | None = None
    least: int = 0
    empty: str = ""

    def check(self, value: Any, field: str) -> None:
        if not isinstance(value, tuple):
            raise LedgerValidationError(f"{field} must be a tuple", field=field)
        if self.length is not None and len(value) != self.length:
            raise LedgerValidationError(f"{field} must have {self.length} values", field=field)
        if len(value) < self.least:
            raise LedgerValidationError(self.empty or f"{field} must have at least "
                                        f"{self.least} values", field=field)
        check = self.each.check
        for item in value:
            check(item, field)

    def dump(self, value: Any) -> Any:
        return [self.each.dump(v) for v in value]

    def load(self, raw: Any, field: str) -> Any:
        if not isinstance(raw, list):
            raise LedgerValidationError(f"{field} must be a list", field=field)
        load = self.each.load
        return tuple([load(v, field) for v in raw])


@dataclass(frozen=True)
class _Nested(FieldCodec):
    cls: type[JsonPayload]

    def check(self, value: Any, field: str) -> None:
        if not isinstance(value, self.cls):
            raise LedgerValidationError(f"{field} must be a {self.cls.__name__}", field=field)

    def dump(self, value: Any) -> Any:
        return value.to_json()

    def load(self, raw: Any, field: str) -> Any:
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise LedgerValidationError(f"{field} must be an object", field=field)
        return self.cls.from_json(raw)


ADDRESS = _Address()
TEXT = _Text()
UINT = Uint()
AddressField = Annotated[str, ADDRESS]
TextField = Annotated[str, TEXT]
Uint256 = Annotated[int, UINT]
Uint64 = Annotated[int, Uint(64)]
Bytes32 = Annotated[bytes, Hex(32)]
AnyBytes = Annotated[bytes, Hex()]


class JsonPayload:
    """Base of the payload dataclasses: from the annotations of its fields (the aliases above,
    a codec in ``Annotated``, or a tuple of payloads for the lines) it checks a payload when it
    is built and writes and reads its JSON. A field with a default may be missing (or null)
    in stored JSON, so a field added later reads old rows."""

    def __post_init__(self) -> None:
        for name, check in _plan(type(self)).checks:
            check(getattr(self, name), name)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) if dump is None else dump(getattr(self, name))
                for name, dump in _plan(type(self)).dumps}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        if type(data) is not dict and not isinstance(data, Mapping):
            raise LedgerValidationError(f"a {cls.__name__} is a JSON object")
        args: dict[str, Any] = {}
        for name, load, defaulted in _plan(cls).loads:
            raw = data.get(name)
            if raw is None:
                if defaulted:
                    continue
                if name not in data:
                    raise LedgerValidationError(f"{name} is missing", field=name)
            args[name] = raw if load is None else load(raw, name)
        return cls(**args)


@dataclass(frozen=True)
class _Plan:
    """A payload class's fields as its hot paths walk them (a line of a 200-line batch is
    built, written and read once each; looking codecs up per field and per value was a
    fifth of the outbox thread's time): the checks run when it is built, per field the dump
    and the load (None: the value itself) and whether it may be missing."""

    checks: tuple[tuple[str, Callable[[Any, str], None]], ...]
    dumps: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    loads: tuple[tuple[str, Callable[[Any, str], Any] | None, bool], ...]


_PLANS: dict[type, _Plan] = {}


def _plan(cls: type) -> _Plan:
    known = _PLANS.get(cls)
    if known is None:
        codecs = _codecs(cls)
        defaulted = _defaulted(cls)
        known = _PLANS[cls] = _Plan(
            checks=tuple((name, c.check) for name, c in codecs.items()),
            dumps=tuple((name, None if type(c).dump is FieldCodec.dump else c.dump)
                        for name, c in codecs.items()),
            loads=tuple((name, None if c.identity_load() else c.load, name in defaulted)
                        for name, c in codecs.items()))
    return known


_CODECS: dict[type, dict[str, FieldCodec]] = {}


def _codecs(cls: type) -> dict[str, FieldCodec]:
    known = _CODECS.get(cls)
    if known is None:
        hints = get_type_hints(cls, include_extras=True)
        known = _CODECS[cls] = {f.name: _codec_of(cls, f.name, hints[f.name])
                                for f in fields(cast(Any, cls))}
    return known


def _defaulted(cls: type) -> set[str]:
    return {f.name for f in fields(cast(Any, cls))
            if f.default is not MISSING or f.default_factory is not MISSING}


@dataclass(frozen=True)
class NonEmpty:
    """Marks the lines of a many-line payload that must have one at least (``message``: the
    error otherwise)."""

    message: str


def _codec_of(cls: type, name: str, hint: Any) -> FieldCodec:
    least, empty = 0, ""
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        for extra in extras:
            if isinstance(extra, FieldCodec):
                return extra
            if isinstance(extra, NonEmpty):
                least, empty = 1, extra.message
        hint = base
    if get_origin(hint) is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis and isinstance(args[0], type) and \
                issubclass(args[0], JsonPayload):
            return Many(_Nested(args[0]), least=least, empty=empty)
    raise TypeError(f"{cls.__name__}.{name}: no payload codec for {hint!r}")
