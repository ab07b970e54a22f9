"""Fast decoding of the indexer's logs: an event whose fields are all one-word static types
(uintN, intN, address, bool, bytesN; indexed strings, bytes and arrays stay their topic) is
decoded by slicing words, with the same result as :meth:`ChainGateway.decode_logs` (which
validates every word through eth_abi and costs about a millisecond a log: most of a round
under the points benchmark's load). Other events (tuples, dynamic data) go to the gateway."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eth_utils.crypto import keccak

from ..chain.encoding import checksum_address
from ..chain.gateway import RawLog

Abi = Sequence[Mapping[str, Any]]
Word = Callable[[bytes], Any]
# (name, [(field, decoder)] of the data, [(field, decoder or None: the topic as is)])
Plan = tuple[str, list[tuple[str, Word]], list[tuple[str, Word | None]]]

_BYTES_N = re.compile(r"^bytes([1-9]|[12][0-9]|3[0-2])$")
_INT_N = re.compile(r"^(u?)int(8|16|24|32|40|48|56|64|72|80|88|96|104|112|120|128|136|144|152|"
                    r"160|168|176|184|192|200|208|216|224|232|240|248|256)?$")


# Checksummed addresses kept, by their 20 bytes (members recur: each issue, redemption and
# transfer of the same member names it again); dropped all at once when full.
CHECKSUM_CACHE = 65_536
_checksums: dict[bytes, str] = {}


def checksum_of(raw: bytes) -> str:
    """EIP-55 checksummed address of 20 bytes (``tests/ledger/test_indexer_decode.py`` holds it
    equal to eth_utils' on random addresses): :func:`ledger.chain.encoding.checksum_address`,
    about half of eth_utils' cost, none for an address seen lately."""
    found = _checksums.get(raw)
    if found is not None:
        return found
    out = checksum_address(raw.hex())
    if len(_checksums) >= CHECKSUM_CACHE:
        _checksums.clear()
    _checksums[raw] = out
    return out


def _word(t: str) -> Word | None:
    if t == "address":
        return lambda w: checksum_of(w[12:])
    if t == "bool":
        return lambda w: w != bytes(32)
    m = _INT_N.match(t)
    if m:
        signed = m.group(1) == ""
        return lambda w: int.from_bytes(w, "big", signed=signed)
    m = _BYTES_N.match(t)
    if m:
        n = int(m.group(1))
        return lambda w: w[:n]
    return None


def _plan(entry: Mapping[str, Any]) -> Plan | None:
    plain: list[tuple[str, Word]] = []
    indexed: list[tuple[str, Word | None]] = []
    for i in entry.get("inputs", []):
        t = str(i["type"])
        if t.startswith("tuple"):
            return None
        word = _word(t)
        if i.get("indexed"):
            if word is None and not (t in {"string", "bytes"} or t.endswith("]")):
                return None
            indexed.append((str(i["name"]), word))
        elif word is None:
            return None
        else:
            plain.append((str(i["name"]), word))
    return str(entry["name"]), plain, indexed


class LogDecoder:
    """The plans of one ABI's events by topic0 (None: the gateway decodes it)."""

    def __init__(self, abi: Abi) -> None:
        self.plans: dict[str, Plan | None] = {}
        for e in abi:
            if e.get("type") != "event" or e.get("anonymous"):
                continue
            sig = f"{e['name']}({','.join(_type(i) for i in e.get('inputs', []))})"
            self.plans["0x" + keccak(text=sig).hex()] = _plan(e)

    def decode(self, lg: RawLog) -> tuple[str, dict[str, Any]] | None | bool:
        """(name, args) of a log; None if the ABI has no such event; False if this event is
        not one a plan covers (ask the gateway)."""
        if not lg.topics:
            return None
        topic0 = lg.topics[0].lower()
        if topic0 not in self.plans:
            return None
        plan = self.plans[topic0]
        if plan is None:
            return False
        name, plain, indexed = plan
        data = bytes.fromhex(lg.data[2:])
        if len(data) != 32 * len(plain) or len(lg.topics) != 1 + len(indexed):
            return False
        args: dict[str, Any] = {field: word(data[32 * k:32 * k + 32])
                                for k, (field, word) in enumerate(plain)}
        for (field, dec), topic in zip(indexed, lg.topics[1:], strict=True):
            raw = bytes.fromhex(topic[2:])
            args[field] = raw if dec is None else dec(raw)
        return name, args


def _type(param: Mapping[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in param.get("components", [])) + ")" + t[5:]
    return t
