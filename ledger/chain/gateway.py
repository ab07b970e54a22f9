"""The one gateway to the chain: JSON-RPC, ABI encoding, and error mapping.

Only ``ledger.chain`` imports web3. Everything above talks to :class:`ChainGateway` (or the
typed clients in ``ledger.contracts.clients`` built on it) and only ever sees ledger errors:
RPC failures become :class:`~ledger.errors.ChainError`, reverts become
:class:`~ledger.errors.ContractRevertError` named after the Solidity custom error.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_typing import URI
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.http_session_manager import HTTPSessionManager
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
)
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from ..errors import (
    ChainError,
    ChainUnavailableError,
    ContractRevertError,
    LedgerError,
    SignerUnfundedError,
)
from .rpc import JsonRpc

log = logging.getLogger(__name__)

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")
# How nodes word "this sender cannot pay": geth/besu/anvil "insufficient funds for gas * price
# + value", Hardhat "Sender doesn't have enough funds to send tx".
UNFUNDED_MESSAGES = ("insufficient funds", "doesn't have enough funds",
                     "does not have enough funds")
# web3_clientVersion prefixes of local development nodes.
DEV_CLIENTS = ("anvil", "hardhatnetwork")

Abi = Sequence[Mapping[str, Any]]


class _EnvironmentOnce(HTTPSessionManager):
    """web3's per-thread HTTP sessions, with the environment read once per process.

    A ``requests`` session that trusts the environment walks ``os.environ`` on every request
    to find proxies, CA bundles and .netrc credentials: about a third of the client-side CPU of
    a small JSON-RPC call. The node's URL does not change, so the proxies that apply to it and
    the CA bundle are read once here and every session keeps them; nothing else changes.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self._proxies = requests.utils.get_environ_proxies(url)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._verify: bool | str = bundle or True

    def cache_and_return_session(self, endpoint_uri: URI, session: requests.Session | None = None,
                                 request_timeout: float | None = None) -> requests.Session:
        out = super().cache_and_return_session(endpoint_uri, cast(Any, session),
                                               request_timeout)
        if out.trust_env:
            out.trust_env = False
            out.proxies.update(self._proxies)
            out.verify = self._verify
        return out


class CountingProvider(HTTPProvider):
    """An HTTP provider that counts JSON-RPC round trips (a batch request counts once)."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(url, request_kwargs={"timeout": timeout})
        self._request_session_manager = _EnvironmentOnce(url)
        self.round_trips = 0
        self._count_lock = threading.Lock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._count_lock:
            self.round_trips += 1
        return super().make_request(method, params)

    def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        with self._count_lock:
            self.round_trips += 1
        return super().make_batch_request(batch_requests)


@dataclass(frozen=True)
class BlockHeader:
    """What the indexer keeps of a block: hashes as lowercase hex without ``0x``."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> BlockHeader:
        return cls(int(raw["number"], 16), str(raw["hash"]).removeprefix("0x").lower(),
                   str(raw["parentHash"]).removeprefix("0x").lower(), int(raw["timestamp"], 16))


@dataclass(frozen=True)
class RawLog:
    """A log as the indexer reads it (see :meth:`ChainGateway.raw_logs`); it has the keys
    :meth:`ChainGateway.decode_logs` reads (``topics``, ``data``)."""

    address: str
    topics: tuple[str, ...]
    data: str
    block_number: int
    tx_hash: str
    log_index: int

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    @classmethod
    def of_answers(cls, answers: Sequence[Any]) -> list[RawLog]:
        """The logs of ``eth_getLogs`` answers as the node wrote them (hex numbers), in order."""
        return [cls(address=checksum(lg["address"]), topics=tuple(lg["topics"]),
                    data=lg["data"], block_number=int(lg["blockNumber"], 16),
                    tx_hash=str(lg["transactionHash"]).lower(),
                    log_index=int(lg["logIndex"], 16))
                for logs in answers for lg in logs or []]


@functools.lru_cache(maxsize=4096)
def checksum(address: str) -> str:
    """An address checksummed (kept: the indexer sees the same contracts' addresses in every
    log)."""
    return str(to_checksum_address(address))


def _block_tag(number: int | str) -> str:
    return hex(number) if isinstance(number, int) else number


def _header(number: int | str, raw: Any) -> BlockHeader:
    if raw is None:
        raise ChainError(f"no block {number}", block=number)
    return BlockHeader.of(raw)


def error_selectors(abis: Iterable[Abi]) -> dict[bytes, Mapping[str, Any]]:
    """Give every custom error declared in ``abis``, keyed by its 4-byte selector."""
    out: dict[bytes, Mapping[str, Any]] = {}
    for abi in abis:
        for entry in abi:
            if entry.get("type") == "error":
                out[function_abi_to_4byte_selector(cast(Any, entry))] = entry
    return out


class ChainGateway:
    """A connection to one EVM JSON-RPC node, with revert decoding for our contracts."""

    def __init__(
        self,
        url: str,
        *,
        error_abis: Mapping[bytes, Mapping[str, Any]] | None = None,
        expected_chain_id: int | None = None,
        timeout: float = 30.0,
        priority_fee: int | None = None,
    ) -> None:
        self.url = url
        self.priority_fee = priority_fee
        self.provider = CountingProvider(url, timeout)
        # Raw reads made often (fees, the indexer's tip, headers and logs, the redeem checks'
        # batch): no web3 provider, formatters or requests session.
        self.reads = JsonRpc(url, timeout=timeout)
        self.w3 = Web3(self.provider)
        self._errors = dict(error_abis or {})
        self._client: str | None = None
        self._automines: bool | None = None
        # The block number this process saw last in a receipt or a block number answer, and
        # how often it changed: a follower waits on the condition for a change (it wakes the
        # moment the outbox of the same process sees its transaction mined, instead of at its
        # next poll). A change, not a higher number: a chain reverted to a snapshot goes down.
        self._seen = threading.Condition()
        self._seen_number = -1
        self._seen_changes = 0
        try:
            self.chain_id = int(self.w3.eth.chain_id)
        except (requests.RequestException, Web3Exception, OSError) as exc:
            raise self.map_error(exc) from exc
        if expected_chain_id is not None and self.chain_id != expected_chain_id:
            raise ChainError(
                f"{url} serves chain {self.chain_id}, settings expect {expected_chain_id}",
                chain_id=self.chain_id,
            )

    @property
    def client(self) -> str:
        """The node's client version (``web3_clientVersion``), lower case; "" if it cannot say."""
        if self._client is None:
            try:
                self._client = str(self.w3.client_version).lower()
            except Exception:  # noqa: BLE001 - a node that cannot say is an unknown node
                return ""
        return self._client

    @property
    def is_dev_chain(self) -> bool:
        """True on a local development node (anvil, Hardhat Network): the well-known dev keys,
        a zero timelock delay and ``evm_mine`` are allowed there. Nothing the service needs
        to work (funding a relaying key, sending, confirming) depends on it."""
        return self.client.startswith(DEV_CLIENTS)

    @property
    def automines(self) -> bool:
        """True on a development node that mines when a transaction arrives (anvil,
        Hardhat Network in automine; asked once: ``anvil_getAutomine``, then
        ``hardhat_getAutomine``). Such a node builds one block per arrival: what did not fit
        it stays in its pool, pending, until the next transaction arrives (a resend of one it
        holds is not an arrival: "already imported"), so the last of a run can wait for ever.
        False on any other node (blocks come on their own there), and on an interval-mining
        dev node."""
        if self._automines is None:
            self._automines = False
            if self.is_dev_chain:
                for method in ("anvil_getAutomine", "hardhat_getAutomine"):
                    try:
                        self._automines = bool(self.rpc(method))
                        break
                    except ChainError:
                        continue
        return self._automines

    @property
    def sends_highest_nonce_first(self) -> bool:
        """True on anvil mining on arrival: a key's transactions sent in one request go highest
        nonce first (:meth:`TransactionSender.broadcast_many`). anvil starts a block as soon as
        one transaction is ready, so sent lowest first its miner took the first one or two of
        a request into a block of their own; sent highest first, the later nonces wait behind
        the missing first one and its arrival makes them all ready at once. Not on Hardhat
        Network, which refuses a nonce above the next one while automining ("transactions
        can't be queued when automining"), nor on any node that mines on its own clock."""
        return self.automines and self.client.startswith("anvil")

    def mine_stalled(self) -> bool:
        """On a node that :attr:`automines`, mine one block of what waits in its pool
        (``evm_mine``): what a new arrival would have done. Gives whether it did (False
        elsewhere: nothing is asked of the node)."""
        if not self.automines:
            return False
        self.rpc("evm_mine")
        return True

    # ------------------------------------------------------------------ errors

    def add_error_abis(self, error_abis: Mapping[bytes, Mapping[str, Any]]) -> None:
        self._errors.update(error_abis)

    def decode_revert(self, data: bytes | str | None) -> ContractRevertError:
        """Turn raw revert data into a ContractRevertError named after the Solidity error."""
        raw = bytes(HexBytes(data)) if data else b""
        selector, body = raw[:4], raw[4:]
        if selector == ERROR_STRING_SELECTOR:
            (reason,) = abi_decode(["string"], body)
            return ContractRevertError("Error", (reason,), message=f"reverted: {reason}")
        if selector == PANIC_SELECTOR:
            (code,) = abi_decode(["uint256"], body)
            return ContractRevertError("Panic", (code,), message=f"panic 0x{code:02x}")
        entry = self._errors.get(selector)
        if entry is None:
            return ContractRevertError("Unknown", (), data="0x" + raw.hex())
        types = [_abi_type(i) for i in entry.get("inputs", [])]
        try:
            args = tuple(_plain(v) for v in abi_decode(types, body))
        except Exception:  # noqa: BLE001 - undecodable data is reported, not raised
            args = ()
        name = str(entry["name"])
        return ContractRevertError(name, args, message=f"{name}({', '.join(map(_shown, args))})",
                                   data="0x" + raw.hex())

    def map_error(self, exc: BaseException) -> LedgerError:
        """Map any exception web3 or the transport raised to a ledger error (once, here)."""
        if isinstance(exc, LedgerError):
            return exc
        if isinstance(exc, ContractCustomError | ContractPanicError | ContractLogicError):
            data = exc.data if isinstance(exc.data, str) else None
            if data and data != "0x":
                return self.decode_revert(data)
            return ContractRevertError("Unknown", (), message=str(exc))
        if isinstance(exc, TimeExhausted):
            return ChainError(f"timed out waiting for the chain: {exc}")
        if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], dict):
            err = exc.args[0]
            data = err.get("data")
            if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
                return self.decode_revert(data)
            return _rejected("node rejected the request", err)
        if isinstance(exc, requests.ConnectionError | ConnectionError):
            return ChainUnavailableError(f"cannot reach the chain node at {self.url}: {exc}")
        # web3 7 raises Web3RPCError (not a ValueError) for a node's JSON-RPC error.
        rpc_error = getattr(exc, "rpc_response", None)
        message = str(rpc_error.get("error", {}).get("message", exc)
                      if isinstance(rpc_error, dict) and isinstance(rpc_error.get("error"), dict)
                      else exc)
        if any(m in message.lower() for m in UNFUNDED_MESSAGES):
            return SignerUnfundedError(f"the signer cannot pay: {message}")
        return ChainError(f"chain request failed: {exc}")

    # ------------------------------------------------------------------ ABI

    def encode_call(self, abi: Abi, fn: str, args: Sequence[Any]) -> bytes:
        """ABI-encode a call of ``fn`` with ``args`` (selector included).

        eth_abi directly: web3's encoder re-validates every element of large batches and
        costs more than the chain does to execute them."""
        selector, types = _function_signature(abi, fn)
        return selector + abi_encode(types, list(args))

    def event_topic(self, abi: Abi, event: str) -> bytes:
        """topic0 of ``event`` in ``abi`` (keccak-256 of its signature)."""
        entry = next(e for e in abi if e.get("type") == "event" and e.get("name") == event)
        return bytes(keccak(text=_signature(entry)))

    def selector(self, abi: Abi, fn: str) -> bytes:
        """The 4-byte selector of ``fn`` in ``abi``."""
        return _function_signature(abi, fn)[0]

    def encode_deploy(self, abi: Abi, bytecode: str, args: Sequence[Any]) -> bytes:
        contract = self.w3.eth.contract(abi=cast(Any, abi), bytecode=bytecode)
        return bytes(HexBytes(contract.constructor(*args).data_in_transaction))

    def decode_output(self, abi: Abi, fn: str, data: bytes) -> tuple[Any, ...]:
        entry = next(e for e in abi if e.get("type") == "function" and e.get("name") == fn)
        types = [_abi_type(o) for o in entry.get("outputs", [])]
        return tuple(_plain(v) for v in abi_decode(types, data))

    def decode_logs(self, abi: Abi, receipt_logs: Sequence[Any]) -> list[tuple[str, dict[str, Any],
                                                                          Mapping[str, Any]]]:
        """Decode the logs our ``abi`` knows into (event name, args, raw log)."""
        events = _events_by_topic(abi)
        out: list[tuple[str, dict[str, Any], Mapping[str, Any]]] = []
        for lg in receipt_logs:
            topics = [bytes(HexBytes(t)) for t in (lg.get("topics") or [])]
            if not topics:
                continue
            entry = events.get(topics[0])
            if entry is None:
                continue
            inputs = entry.get("inputs", [])
            indexed = [i for i in inputs if i.get("indexed")]
            plain = [i for i in inputs if not i.get("indexed")]
            values = abi_decode([_abi_type(i) for i in plain], bytes(HexBytes(lg.get("data"))))
            args: dict[str, Any] = dict(zip((str(i["name"]) for i in plain),
                                            (_plain(v) for v in values), strict=True))
            for inp, topic in zip(indexed, topics[1:], strict=False):
                t = _abi_type(inp)
                args[str(inp["name"])] = (topic if t in {"string", "bytes"} or t.endswith("]")
                                          else _plain(abi_decode([t], topic)[0]))
            out.append((str(entry["name"]), args, lg))
        return out

    # ------------------------------------------------------------------ RPC

    def call(self, to: str, data: bytes, *, block: str | int = "latest") -> bytes:
        """eth_call; a revert raises ContractRevertError.

        Sent raw: web3's request validation and result formatting cost about three times
        what the node takes to run a view. An error answer is asked again through web3, so
        reverts are mapped exactly as before."""
        result = self._raw_or_none("eth_call", [{"to": checksum(to), "data": "0x" + data.hex()},
                                                _block_tag(block)])
        if result is not None:
            return bytes.fromhex(result[2:])
        try:
            return bytes(self.w3.eth.call({"to": to_checksum_address(to), "data": HexBytes(data)},
                                          block_identifier=cast(Any, block)))
        except Exception as exc:
            raise self.map_error(exc) from exc

    def _raw_or_none(self, method: str, params: list[Any], *, retry: bool = True
                     ) -> str | None:
        """A raw JSON-RPC call's hex result, or None if the node answered an error (the
        caller then asks through web3, which maps it). Through the lean client
        (:attr:`reads`); ``retry=False`` for a request never to be sent twice."""
        resp = self.reads.answer(method, params, retry=retry)
        result = resp.get("result")
        if "error" in resp or not isinstance(result, str) or not result.startswith("0x"):
            return None
        return result

    def estimate_gas(self, *, sender: str, to: str | None, data: bytes) -> int:
        tx: dict[str, Any] = {"from": checksum(sender), "data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = checksum(to)
        result = self._raw_or_none("eth_estimateGas", [tx])
        if result is not None:
            return int(result, 16)
        return self._estimate_gas_web3(sender=sender, to=to, data=data)

    def _estimate_gas_web3(self, *, sender: str, to: str | None, data: bytes) -> int:
        tx: dict[str, Any] = {"from": to_checksum_address(sender), "data": HexBytes(data)}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        try:
            return int(self.w3.eth.estimate_gas(cast(Any, tx)))
        except Exception as exc:
            raise self.map_error(exc) from exc

    def send_raw(self, raw: bytes) -> str:
        """Broadcast a signed transaction; give its hash. Sent raw like :meth:`call`, never
        twice by the lean client (a kept connection is probed before, not retried after); an
        error answer is sent again through web3 (the node answers a transaction it refused
        the same way twice), so it is mapped as before."""
        result = self._raw_or_none("eth_sendRawTransaction", ["0x" + raw.hex()], retry=False)
        if result is not None:
            return result.lower()
        try:
            return "0x" + bytes(self.w3.eth.send_raw_transaction(raw)).hex()
        except Exception as exc:
            raise self.map_error(exc) from exc

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt, or None if not mined. Read raw: web3's formatters cost more than the
        node on receipts with hundreds of logs. Numbers are ints, hashes and data hex."""
        raw = self.reads.call("eth_getTransactionReceipt", [tx_hash])
        if raw is None:
            return None
        return self.parse_receipt(raw)

    def parse_receipt(self, raw: dict[str, Any], *, logs: bool = True) -> dict[str, Any]:
        """A raw ``eth_getTransactionReceipt`` result (one of a batch) as :meth:`receipt`
        gives it; ``logs=False``: its logs left as the node gave them (the outbox reads a
        receipt's status and block only, and a 200-line issue's carries 400 logs)."""
        receipt = _receipt(raw, logs=logs)
        self.saw_block(int(receipt["blockNumber"]))
        return receipt

    def saw_block(self, number: int) -> None:
        """Note that block ``number`` exists (wakes :meth:`wait_for_new_block`)."""
        if number == self._seen_number:
            return
        with self._seen:
            if number != self._seen_number:
                self._seen_number = number
                self._seen_changes += 1
                self._seen.notify_all()

    @property
    def blocks_seen(self) -> int:
        """How often the block number this process saw changed (for
        :meth:`wait_for_new_block`)."""
        return self._seen_changes

    def wait_for_new_block(self, since: int, timeout: float) -> bool:
        """Wait until :attr:`blocks_seen` differs from ``since`` (this process saw another
        block in a receipt or a block number answer) or ``timeout`` seconds pass; True if it
        does. Blocks mined for other processes are not seen here: a caller still polls, every
        ``timeout``."""
        with self._seen:
            return self._seen.wait_for(lambda: self._seen_changes != since, timeout)

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return dict(self.w3.eth.get_transaction(cast(Any, tx_hash)))
        except TransactionNotFound:
            return None
        except Exception as exc:
            raise self.map_error(exc) from exc

    def nonce(self, address: str, block: str = "pending") -> int:
        try:
            return int(self.w3.eth.get_transaction_count(to_checksum_address(address),
                                                         cast(Any, block)))
        except Exception as exc:
            raise self.map_error(exc) from exc

    def fees(self) -> tuple[int, int]:
        """Give (max fee per gas, priority fee per gas) suitable for a new transaction now.

        Read raw in one round trip through the lean client (``ledger.chain.rpc``): web3's
        ``get_block`` and ``max_priority_fee`` cost ~3 ms of CPU a call here, against ~0.2
        (the outbox asks once a round). A node without ``eth_maxPriorityFeePerGas`` gets
        web3's fallback (its fee history), as before."""
        calls: list[tuple[str, Sequence[Any]]] = [("eth_getBlockByNumber", ["latest", False])]
        if self.priority_fee is None:
            calls.append(("eth_maxPriorityFeePerGas", []))
        answers = self.reads.batch(calls, errors_in_place=True)
        block = answers[0]
        if isinstance(block, ChainError) or not isinstance(block, dict):
            raise block if isinstance(block, ChainError) else ChainError("no latest block")
        base = int(block.get("baseFeePerGas") or "0x0", 16)
        if self.priority_fee is not None:
            priority = self.priority_fee
        elif isinstance(answers[1], str):
            priority = int(answers[1], 16)
        else:
            try:
                priority = int(self.w3.eth.max_priority_fee)
            except Exception as exc:
                raise self.map_error(exc) from exc
        # Twice the base fee: the transaction stays valid through six full blocks of +12.5 %.
        return base * 2 + priority, priority

    def balance(self, address: str, block: str = "latest") -> int:
        """The ether balance of ``address`` in wei."""
        try:
            return int(self.w3.eth.get_balance(to_checksum_address(address), cast(Any, block)))
        except Exception as exc:
            raise self.map_error(exc) from exc

    def code(self, address: str) -> bytes:
        """The deployed code at ``address`` (empty if none)."""
        try:
            return bytes(self.w3.eth.get_code(to_checksum_address(address)))
        except Exception as exc:
            raise self.map_error(exc) from exc

    def block_number(self) -> int:
        try:
            number = int(self.w3.eth.block_number)
        except Exception as exc:
            raise self.map_error(exc) from exc
        self.saw_block(number)
        return number

    def block(self, number: int | str) -> dict[str, Any]:
        try:
            return dict(self.w3.eth.get_block(cast(Any, number)))
        except Exception as exc:
            raise self.map_error(exc) from exc

    def header(self, number: int | str) -> BlockHeader:
        """A block's number, hash, parent hash and time ("latest" or a number), read raw
        through :attr:`reads`: no web3 result formatting, which costs more than the call for
        what the indexer needs."""
        return _header(number, self.reads.call("eth_getBlockByNumber",
                                               [_block_tag(number), False]))

    def headers(self, numbers: Sequence[int]) -> list[BlockHeader]:
        """The headers of ``numbers``, in one JSON-RPC batch (one round trip)."""
        if len(numbers) <= 1:
            return [self.header(n) for n in numbers]
        answers = self.reads.batch([("eth_getBlockByNumber", [_block_tag(n), False])
                                    for n in numbers])
        return [_header(n, raw) for n, raw in zip(numbers, answers, strict=True)]

    def get_logs(self, *, address: str | Sequence[str] | None, from_block: int,
                 to_block: int, topics: Sequence[Any] | None = None
                 ) -> list[Mapping[str, Any]]:
        params: dict[str, Any] = {"fromBlock": from_block, "toBlock": to_block}
        if topics is not None:
            params["topics"] = list(topics)
        if address is not None:
            params["address"] = ([to_checksum_address(a) for a in address]
                                 if not isinstance(address, str) else to_checksum_address(address))
        try:
            return [dict(lg) for lg in self.w3.eth.get_logs(cast(Any, params))]
        except Exception as exc:
            raise self.map_error(exc) from exc

    def raw_logs(self, queries: Sequence[tuple[Sequence[str], Sequence[str]]], *,
                 from_block: int, to_block: int) -> list[RawLog]:
        """The logs of blocks ``from_block``..``to_block`` matching any of ``queries`` (each
        contract addresses and the topic0 values wanted of them), in one round trip (a
        JSON-RPC batch of ``eth_getLogs``), read raw (no web3 result formatting, which costs
        more than the call): numbers as ints, hashes and data as ``0x`` hex, the address
        checksummed; through :attr:`reads`."""
        calls = [("eth_getLogs", [{"fromBlock": hex(from_block), "toBlock": hex(to_block),
                                   "address": [a.lower() for a in addresses],
                                   "topics": [list(topics)]}])
                 for addresses, topics in queries]
        if not calls:
            return []
        results = ([self.reads.call(*calls[0])] if len(calls) == 1
                   else self.reads.batch(calls))
        return RawLog.of_answers(results)

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """A raw JSON-RPC call (anvil_*, evm_* helpers); errors become ChainError."""
        try:
            resp = self.provider.make_request(RPCEndpoint(method), list(params))
        except Exception as exc:
            raise self.map_error(exc) from exc
        if "error" in resp:
            raise ChainError(f"{method} failed: {resp['error']}", rpc=resp["error"])
        return resp.get("result")

    def rpc_batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *,
                  drop_logs: bool = False) -> list[Any]:
        """Many raw JSON-RPC calls in one round trip (read-only tools that ask the node
        thousands of questions: the audit's view checks); results in the order of ``calls``.
        A call that failed gives a :class:`ChainError` in its place, not raised.
        ``drop_logs``: receipts come without their logs (``"logs": None``), which are never
        decoded (the outbox reads a receipt's status and block: a 200-line issue's receipt
        carries 400 logs, ~280 kB of JSON, and decoding them was a quarter of its thread).

        Sent through the lean client (:attr:`reads`): web3's provider and ``requests`` cost
        the outbox about a third of its thread on its receipts and broadcasts (py-spy, the
        service's shape). A batch that broadcasts or asks a node's ``evm_*``/``anvil_*``
        helper is never sent twice; one of reads only may be (see ``ledger.chain.rpc``)."""
        if not calls:
            return []
        retry = all(m.startswith(_READ_PREFIXES) and m not in _NOT_READS for m, _ in calls)
        answers = self.reads.answers(calls, retry=retry,
                                     transform=without_logs if drop_logs else None)
        return [_rejected(f"{method} failed", a["error"]) if "error" in a else a.get("result")
                for (method, _), a in zip(calls, answers, strict=True)]

    @property
    def round_trips(self) -> int:
        return self.provider.round_trips + self.reads.round_trips


# Methods a batch may send twice (on a kept connection the node closed): reads.
_READ_PREFIXES = ("eth_", "net_", "web3_")
_NOT_READS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction", "eth_sign",
                        "eth_signTransaction"})


def _rejected(what: str, err: Any) -> ChainError:
    """A node's JSON-RPC error answer: SignerUnfundedError when it says the sender cannot pay
    (single requests and each call of a batch alike), else ChainError."""
    message = str(err.get("message", err)) if isinstance(err, dict) else str(err)
    if any(m in message.lower() for m in UNFUNDED_MESSAGES):
        return SignerUnfundedError(f"the signer cannot pay: {message}", rpc=err)
    return ChainError(f"{what}: {message}", rpc=err)


def _abi_type(param: Mapping[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){t[5:]}"
    return t


_LOGS_KEY = re.compile(rb'"logs"\s*:\s*\[')


def without_logs(body: bytes) -> bytes:
    """A JSON-RPC answer with the array of every ``"logs"`` key replaced by ``null``.

    A receipt's logs hold hex strings, numbers and booleans only (no string can hold a
    bracket), so an array ends where as many ``]`` as ``[`` have been passed; the scan runs in
    C (``find``/``count``), a few microseconds for 400 logs where decoding them took some
    milliseconds. Raises ValueError if an array does not end (the caller decodes the whole)."""
    parts: list[bytes] = []
    pos = 0
    while (m := _LOGS_KEY.search(body, pos)) is not None:
        parts.append(body[pos:m.start()])
        depth, i = 1, m.end()
        while depth:
            j = body.find(b"]", i)
            if j < 0:
                raise ValueError("a logs array does not end")
            depth += body.count(b"[", i, j) - 1
            i = j + 1
        parts.append(b'"logs":null')
        pos = i
    parts.append(body[pos:])
    return b"".join(parts)


def _receipt(raw: dict[str, Any], *, logs: bool = True) -> dict[str, Any]:
    out = dict(raw)
    for key in ("status", "blockNumber", "gasUsed", "cumulativeGasUsed", "effectiveGasPrice",
                "transactionIndex"):
        if isinstance(out.get(key), str):
            out[key] = int(out[key], 16)
    if out.get("contractAddress"):
        out["contractAddress"] = to_checksum_address(out["contractAddress"])
    for lg in (out.get("logs") or ()) if logs else ():
        for key in ("blockNumber", "logIndex", "transactionIndex"):
            if isinstance(lg.get(key), str):
                lg[key] = int(lg[key], 16)
    return out


# Lookups by ABI identity: clients keep their ABI for their lifetime, so each function's
# selector and each event's topic are computed once. The ABI is kept in the entry so an id
# reused after garbage collection cannot match.
_fn_cache: dict[tuple[int, str], tuple[Abi, bytes, list[str]]] = {}


def _signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(_abi_type(i) for i in entry.get('inputs', []))})"


def _function_signature(abi: Abi, fn: str) -> tuple[bytes, list[str]]:
    hit = _fn_cache.get((id(abi), fn))
    if hit is not None and hit[0] is abi:
        return hit[1], hit[2]
    # ``fn`` is a name, or for an overloaded function its full signature ("f(uint256,bytes)").
    name = fn.split("(", 1)[0]
    entry = next(e for e in abi if e.get("type") == "function" and e.get("name") == name
                 and (name == fn or _signature(e) == fn))
    types = [_abi_type(i) for i in entry.get("inputs", [])]
    selector = function_abi_to_4byte_selector(cast(Any, entry))
    _fn_cache[(id(abi), fn)] = (abi, selector, types)
    return selector, types


_topic_cache: dict[int, tuple[Abi, dict[bytes, Mapping[str, Any]]]] = {}


def _events_by_topic(abi: Abi) -> dict[bytes, Mapping[str, Any]]:
    hit = _topic_cache.get(id(abi))
    if hit is not None and hit[0] is abi:
        return hit[1]
    table = {keccak(text=_signature(e)): e for e in abi if e.get("type") == "event"}
    _topic_cache[id(abi)] = (abi, table)
    return table


def _shown(value: Any) -> str:
    """A decoded argument as people read it in a message: bytes (bytes32) as 0x-hex."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_shown, value)) + ")"
    return str(value)


def _plain(value: Any) -> Any:
    """Make decoded ABI values plain Python: bytes stay bytes, addresses checksummed."""
    if isinstance(value, HexBytes):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value
