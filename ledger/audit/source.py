"""What the audit reads from the chain, and nothing else: the alliance's contracts found from
the registry alone, their logs in chunks, views answered in batches, transaction senders.

The audit never opens the service's store and needs no key: everything here is public chain
data, asked of any JSON-RPC endpoint through the one gateway (``ledger.chain.gateway``), with
the ABIs of the compiled contracts. Logs are read raw (``eth_getLogs`` as JSON) and decoded
here, word by word for the static events that make up nearly every log: web3's formatters
and a generic ABI decoder cost more per log than the node does to send it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from ..chain.gateway import Abi, ChainGateway, error_selectors
from ..contracts.compiler import Artifact
from ..errors import ChainError, LedgerNotFoundError

# Blocks per eth_getLogs at most (nodes cap the range or the answer's size; a range that is
# refused is read in halves), the first range, and the logs a range aims at.
CHUNK = 5_000
FIRST_STEP = 4
LOGS_PER_CHUNK = 20_000
# Ranges asked of the node at once, ahead of the one being applied.
IN_FLIGHT = 2
# Calls per JSON-RPC batch for views and transactions.
BATCH = 500
ZERO_ADDRESS = "0x" + "0" * 40


class Kind:
    """What an alliance contract is, as rules subscribe to it (plain strings: hot path)."""

    REGISTRY = "registry"
    FACTORY = "factory"
    PROGRAM = "program"
    CLEARING = "clearing"
    TOKEN = "settlement_token"
    TIMELOCK = "timelock"
    COUPONS = "coupon_book"
    ITEMS = "items"


# The compiled artifact whose ABI each kind of contract speaks.
ARTIFACT_OF = {Kind.REGISTRY: "AllianceRegistry", Kind.FACTORY: "PointProgramFactory",
               Kind.PROGRAM: "PointProgram", Kind.CLEARING: "Clearing",
               Kind.TOKEN: "SettlementToken", Kind.TIMELOCK: "AllianceTimelock",
               Kind.COUPONS: "CouponBook", Kind.ITEMS: "ItemRegistry"}


class Event:
    """One decoded log. Addresses are lowercase 0x-hex, bytes32 values 0x-hex, numbers int."""

    __slots__ = ("address", "args", "block", "kind", "log_index", "name", "tx")

    def __init__(self, name: str, kind: str, address: str, args: dict[str, Any], block: int,
                 log_index: int, tx: str) -> None:
        self.name = name
        self.kind = kind
        self.address = address
        self.args = args
        self.block = block
        self.log_index = log_index
        self.tx = tx

    @property
    def position(self) -> tuple[int, int]:
        return (self.block, self.log_index)


@dataclass
class AllianceAddresses:
    """The alliance's contracts as the registry names them (lowercase addresses)."""

    registry: str
    factory: str
    clearing: str
    settlement_token: str
    timelock: str | None
    programs: dict[int, str] = field(default_factory=dict)
    # The coupon book as the clearing names it; the item registry as the auditor names it
    # (nothing on chain points at it): None when the alliance has none.
    coupon_book: str | None = None
    items: str | None = None

    def kinds(self) -> dict[str, str]:
        """Address → kind of every contract the audit reads."""
        out = {self.registry: Kind.REGISTRY, self.factory: Kind.FACTORY,
               self.clearing: Kind.CLEARING, self.settlement_token: Kind.TOKEN}
        if self.timelock:
            out[self.timelock] = Kind.TIMELOCK
        out.update(dict.fromkeys(self.programs.values(), Kind.PROGRAM))
        if self.coupon_book:
            out[self.coupon_book] = Kind.COUPONS
        if self.items:
            out[self.items] = Kind.ITEMS
        return out

    def merchant_of(self) -> dict[str, int]:
        return {a: m for m, a in self.programs.items()}


Word = Callable[[str], Any]


@dataclass(frozen=True)
class _Spec:
    name: str
    # (name, converter) of each indexed argument, in topic order
    indexed: tuple[tuple[str, Word], ...]
    # (name, start, end, converter) of each data word, as slices of the 0x-hex data
    data: tuple[tuple[str, int, int, Word], ...]
    static: bool
    abi: Abi


_STATIC = ("uint", "int", "address", "bytes32", "bool")


def _is_static(t: str) -> bool:
    return not t.endswith("]") and not t.startswith("tuple") and t.startswith(_STATIC) \
        and t not in {"bytes", "string"}


def _address(w: str) -> str:
    return "0x" + w[-40:]


def _uint(w: str) -> int:
    return int(w, 16)


def _int(w: str) -> int:
    v = int(w, 16)
    return v - (1 << 256) if v >= 1 << 255 else v


def _bool(w: str) -> bool:
    return int(w, 16) != 0


def _bytes32(w: str) -> str:
    return "0x" + w[-64:]


def _converter(t: str) -> Word:
    """How one 32-byte word (64 hex digits) of ABI type ``t`` becomes a Python value."""
    if t == "address":
        return _address
    if t.startswith("uint"):
        return _uint
    if t.startswith("int"):
        return _int
    if t == "bool":
        return _bool
    return _bytes32


def _norm(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return v.lower()
    if isinstance(v, tuple):
        return tuple(_norm(x) for x in v)
    return v


class ChainSource:
    """Read-only access to one alliance on one chain, pinned at one head block."""

    def __init__(self, gateway: ChainGateway, artifacts: Mapping[str, Artifact], *,
                 registry: str, head: int | None = None) -> None:
        self.gateway = gateway
        self.artifacts = artifacts
        gateway.add_error_abis(error_selectors(a.abi for a in artifacts.values()))
        self.abis: dict[str, Abi] = {k: artifacts[a].abi for k, a in ARTIFACT_OF.items()}
        self.head = gateway.block_number() if head is None else head
        self.registry = registry.lower()
        if not gateway.code(to_checksum_address(self.registry)):
            raise LedgerNotFoundError(f"no contract at {registry} on chain {gateway.chain_id}")
        self._specs: dict[str, dict[str, _Spec]] = {k: self._event_specs(abi)
                                                    for k, abi in self.abis.items()}
        self.logs_read = 0

    # ------------------------------------------------------------------ discovery

    def discover(self, *, from_block: int, items: str | None = None) -> AllianceAddresses:
        """The alliance's contracts, asked of the registry and the clearing at the head; the
        timelock is the contract that holds the registry's admin role there; the coupon book
        is the one the clearing names; ``items`` is the item registry's address, which only
        the auditor can name (the registry does not know it)."""
        reg = self.registry
        factory = str(self.view(Kind.REGISTRY, reg, "factory")[0]).lower()
        clearing = str(self.view(Kind.REGISTRY, reg, "clearing")[0]).lower()
        token = str(self.view(Kind.CLEARING, clearing, "settlementToken")[0]).lower()
        count = int(self.view(Kind.REGISTRY, reg, "merchantCount")[0])
        answers = self.views([(Kind.REGISTRY, reg, "merchant", (m,))
                              for m in range(1, count + 1)])
        programs = {}
        for m, ans in enumerate(answers, start=1):
            if isinstance(ans, ChainError):
                raise ans
            program = str(ans[0][2]).lower()
            if program != ZERO_ADDRESS:
                programs[m] = program
        book = str(self.view(Kind.CLEARING, clearing, "couponBook")[0]).lower()
        if items is not None and not self.gateway.code(to_checksum_address(items)):
            raise LedgerNotFoundError(f"no item registry at {items} on chain "
                                      f"{self.gateway.chain_id}")
        return AllianceAddresses(registry=reg, factory=factory, clearing=clearing,
                                 settlement_token=token, timelock=self._timelock(from_block),
                                 programs=programs,
                                 coupon_book=None if book == ZERO_ADDRESS else book,
                                 items=items.lower() if items else None)

    def _timelock(self, from_block: int) -> str | None:
        topic = "0x" + self.gateway.event_topic(self.abis[Kind.REGISTRY], "RoleGranted").hex()
        candidates: list[str] = []
        for frm in range(from_block, self.head + 1, CHUNK):
            logs = self.gateway.rpc("eth_getLogs", [{
                "address": to_checksum_address(self.registry), "fromBlock": hex(frm),
                "toBlock": hex(min(self.head, frm + CHUNK - 1)),
                "topics": [topic, "0x" + "00" * 32]}])
            candidates += ["0x" + str(lg["topics"][2])[-40:] for lg in logs]
        for account in reversed(candidates):
            held = self.view(Kind.REGISTRY, self.registry, "hasRole", b"\0" * 32, account)[0]
            if held and self.gateway.code(to_checksum_address(account)):
                return account
        return None

    # ------------------------------------------------------------------ logs

    def events(self, kinds: Mapping[str, str], *, from_block: int,
               on_chunk: Callable[[int, int], None] | None = None) -> Iterator[list[Event]]:
        """The decoded logs of ``kinds``' contracts from ``from_block`` to the head, chunk by
        chunk in chain order; ``on_chunk(to_block, logs)`` after each.

        Chunks aim at :data:`LOGS_PER_CHUNK` logs (the block range adapts to the density
        met so far) and the next :data:`IN_FLIGHT` ranges are fetched while this one is
        decoded and applied: the node (which answers requests in parallel) and the rules work
        at the same time."""
        addresses = [to_checksum_address(a) for a in sorted(kinds)]
        step = FIRST_STEP
        nxt = from_block
        pending: deque[Future[tuple[list[Mapping[str, Any]], int, int]]] = deque()
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="audit-logs") as pool:
            while True:
                while len(pending) < IN_FLIGHT and nxt <= self.head:
                    to = min(self.head, nxt + step - 1)
                    pending.append(pool.submit(self._fetch, addresses, nxt, to))
                    nxt = to + 1
                if not pending:
                    return
                raw, frm, to = pending.popleft().result()
                # The next ranges aim at LOGS_PER_CHUNK logs at the density of this one.
                step = max(1, min(CHUNK, (to - frm + 1) * LOGS_PER_CHUNK // max(1, len(raw))))
                self.logs_read += len(raw)
                out = self.decode(raw, kinds)
                if on_chunk is not None:
                    on_chunk(to, len(raw))
                yield out

    def _fetch(self, addresses: Sequence[str], frm: int, to: int
               ) -> tuple[list[Mapping[str, Any]], int, int]:
        """One range's raw logs; a range the node refuses is read in halves."""
        try:
            raw = self.gateway.rpc("eth_getLogs", [{"address": addresses, "fromBlock": hex(frm),
                                                    "toBlock": hex(to)}])
            return list(raw), frm, to
        except ChainError:
            if frm == to:
                raise
        mid = (frm + to) // 2
        first, _, _ = self._fetch(addresses, frm, mid)
        second, _, _ = self._fetch(addresses, mid + 1, to)
        return first + second, frm, to

    def raw_logs(self, kinds: Mapping[str, str], *, from_block: int) -> int:
        """Read the same range as :meth:`events` without decoding; give the logs read (the
        benchmark's floor: what the node alone costs)."""
        addresses = [to_checksum_address(a) for a in sorted(kinds)]
        n = 0
        for frm in range(from_block, self.head + 1, CHUNK):
            to = min(self.head, frm + CHUNK - 1)
            n += len(self.gateway.rpc("eth_getLogs", [{"address": addresses,
                                                       "fromBlock": hex(frm),
                                                       "toBlock": hex(to)}]))
        return n

    def decode(self, raw: Sequence[Mapping[str, Any]], kinds: Mapping[str, str]) -> list[Event]:
        out: list[Event] = []
        for lg in raw:
            address = str(lg["address"]).lower()
            kind = kinds.get(address)
            topics = lg.get("topics") or []
            if kind is None or not topics:
                continue
            spec = self._specs[kind].get(str(topics[0]).lower())
            if spec is None:
                continue
            args: dict[str, Any]
            if spec.static:
                data = lg["data"]
                args = {n: f(data[a:b]) for n, a, b, f in spec.data}
                for (n, f), topic in zip(spec.indexed, topics[1:], strict=False):
                    args[n] = f(topic)
            else:
                decoded = self.gateway.decode_logs(spec.abi, [lg])
                args = {k: _norm(v) for k, v in decoded[0][1].items()} if decoded else {}
            out.append(Event(spec.name, kind, address, args, int(lg["blockNumber"], 16),
                             int(lg["logIndex"], 16), str(lg["transactionHash"])))
        return out

    def _event_specs(self, abi: Abi) -> dict[str, _Spec]:
        out = {}
        for e in abi:
            if e.get("type") != "event" or e.get("anonymous"):
                continue
            inputs = e.get("inputs", [])
            indexed = [(str(i["name"]), str(i["type"])) for i in inputs if i.get("indexed")]
            data = [(str(i["name"]), str(i["type"])) for i in inputs if not i.get("indexed")]
            static = all(_is_static(t) for _, t in indexed + data)
            topic = "0x" + self.gateway.event_topic(abi, str(e["name"])).hex()
            out[topic] = _Spec(
                str(e["name"]), tuple((n, _converter(t)) for n, t in indexed),
                tuple((n, 2 + 64 * i, 66 + 64 * i, _converter(t))
                      for i, (n, t) in enumerate(data)), static, abi)
        return out

    # ------------------------------------------------------------------ views, txs, blocks

    def view(self, kind: str, address: str, fn: str, *args: Any) -> tuple[Any, ...]:
        abi = self.abis[kind]
        data = self.gateway.call(to_checksum_address(address),
                                 self.gateway.encode_call(abi, fn, args), block=self.head)
        return tuple(_norm(v) for v in self.gateway.decode_output(abi, fn, data))

    def views(self, calls: Sequence[tuple[str, str, str, tuple[Any, ...]]]
              ) -> list[tuple[Any, ...] | ChainError]:
        """Many views at the head, :data:`BATCH` per round trip and :data:`IN_FLIGHT`
        round trips at once; a reverted one gives its error in its place."""
        head = hex(self.head)

        def batch(part: Sequence[tuple[str, str, str, tuple[Any, ...]]]
                  ) -> list[tuple[Any, ...] | ChainError]:
            reqs = [("eth_call", [{"to": to_checksum_address(addr),
                                   "data": "0x" + self.gateway.encode_call(
                                       self.abis[kind], fn, list(args)).hex()}, head])
                    for kind, addr, fn, args in part]
            out: list[tuple[Any, ...] | ChainError] = []
            for (kind, _, fn, _), res in zip(part, self.gateway.rpc_batch(reqs), strict=True):
                if isinstance(res, ChainError):
                    out.append(res)
                    continue
                raw = bytes.fromhex(str(res)[2:])
                out.append(tuple(_norm(v) for v in
                                 self.gateway.decode_output(self.abis[kind], fn, raw)))
            return out

        parts = [calls[i:i + BATCH] for i in range(0, len(calls), BATCH)]
        if len(parts) <= 1:
            return batch(parts[0]) if parts else []
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="audit-views") as pool:
            return [r for answers in pool.map(batch, parts) for r in answers]

    def senders(self, tx_hashes: Sequence[str]) -> dict[str, str]:
        """The sender (lowercase) of each transaction."""
        out: dict[str, str] = {}
        hashes = sorted(set(tx_hashes))
        for i in range(0, len(hashes), BATCH):
            part = hashes[i:i + BATCH]
            res = self.gateway.rpc_batch([("eth_getTransactionByHash", [h]) for h in part])
            for h, tx in zip(part, res, strict=True):
                if isinstance(tx, dict):
                    out[h] = str(tx["from"]).lower()
        return out

    def block_times(self, blocks: Sequence[int]) -> dict[int, int]:
        """The timestamp of each block."""
        out: dict[int, int] = {}
        wanted = sorted(set(blocks))
        for i in range(0, len(wanted), BATCH):
            part = wanted[i:i + BATCH]
            res = self.gateway.rpc_batch([("eth_getBlockByNumber", [hex(b), False])
                                          for b in part])
            for b, blk in zip(part, res, strict=True):
                if isinstance(blk, dict):
                    out[b] = int(str(blk["timestamp"]), 16)
        return out
