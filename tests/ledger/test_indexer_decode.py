"""The indexer's fast log decoder gives what the gateway's eth_abi decoding gives, for every
event of every contract the indexer follows (random values of each field's type, encoded by
eth_abi), and hands the events it does not cover (tuples, dynamic data) to the gateway."""

from __future__ import annotations

import os
import random
from typing import Any

from eth_abi import encode
from eth_utils.address import to_checksum_address

from ledger.alliance import Alliance
from ledger.chain.gateway import RawLog
from ledger.indexer import decode
from ledger.indexer.decode import LogDecoder, checksum_of
from ledger.merchants.service import AdmittedMerchant


def _value(t: str, rnd: random.Random) -> Any:
    if t == "address":
        return to_checksum_address("0x" + rnd.randbytes(20).hex())
    if t == "bool":
        return rnd.random() < 0.5
    if t.startswith("uint"):
        return rnd.randrange(2 ** int(t[4:] or 256))
    if t.startswith("int"):
        bits = int(t[3:] or 256)
        return rnd.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))
    if t.startswith("bytes") and t != "bytes":
        return rnd.randbytes(int(t[5:]))
    raise ValueError(t)


def test_the_fast_decoder_agrees_with_eth_abi_on_every_followed_event(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    c = alliance.contracts
    clients = [c.clearing, c.registry, c.program(store_merchant.program), c.coupons, c.items]
    rnd = random.Random(13)
    fast = slow = 0
    for client in clients:
        assert client is not None
        decoder = LogDecoder(client.abi)
        for entry in client.abi:
            if entry.get("type") != "event":
                continue
            inputs = entry.get("inputs", [])
            sig = str(entry["name"])
            topic0 = "0x" + alliance.gateway.event_topic(client.abi, sig).hex()
            if any(str(i["type"]).startswith("tuple") for i in inputs):
                assert decoder.plans[topic0] is None
                slow += 1
                continue
            for _ in range(5):
                plain = [i for i in inputs if not i.get("indexed")]
                try:
                    values = [_value(str(i["type"]), rnd) for i in plain]
                    topics = [topic0] + [
                        "0x" + encode([str(i["type"])], [_value(str(i["type"]), rnd)]).hex()
                        for i in inputs if i.get("indexed")]
                except ValueError:  # a dynamic field: the gateway's
                    lg = RawLog(address=client.address, topics=(topic0,), data="0x",
                                block_number=1, tx_hash="0x" + "00" * 32, log_index=0)
                    assert decoder.decode(lg) is False
                    slow += 1
                    break
                lg = RawLog(address=client.address, topics=tuple(topics),
                            data="0x" + encode([str(i["type"]) for i in plain], values).hex(),
                            block_number=1, tx_hash="0x" + "00" * 32, log_index=0)
                ((name, args, _),) = alliance.gateway.decode_logs(client.abi, [lg])
                assert decoder.decode(lg) == (name, args), sig
                fast += 1
    assert fast >= 5 * 15 and slow >= 1  # PointsIssued and the like fast; CampaignCreated not


def test_checksum_of_is_eip55() -> None:
    edge = [bytes(20), b"\xff" * 20, bytes.fromhex("aa" * 20), bytes.fromhex("99" * 20)]
    for raw in edge + [os.urandom(20) for _ in range(2000)]:
        assert checksum_of(raw) == to_checksum_address("0x" + raw.hex())
        assert checksum_of(raw) == to_checksum_address("0x" + raw.hex())  # from the cache


def test_checksum_of_stays_eip55_when_its_cache_is_full(monkeypatch: Any) -> None:
    monkeypatch.setattr(decode, "CHECKSUM_CACHE", 8)
    raws = [os.urandom(20) for _ in range(50)]
    for raw in raws + raws:
        assert checksum_of(raw) == to_checksum_address("0x" + raw.hex())
    assert len(decode._checksums) <= 8
