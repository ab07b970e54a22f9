"""The lean JSON-RPC client (``ledger.chain.rpc``), the gateway's raw ``reads``."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ledger.chain.gateway import ChainGateway
from ledger.chain.rpc import JsonRpc
from ledger.errors import ChainError, ChainUnavailableError


def test_the_lean_client_answers_as_the_node_does_in_one_round_trip_a_call_or_batch(
        anvil_url: str, gateway: ChainGateway) -> None:
    node = JsonRpc(anvil_url)
    head = int(node.call("eth_blockNumber"), 16)
    assert abs(head - gateway.block_number()) <= 1
    block = node.call("eth_getBlockByNumber", [hex(head), False])
    assert block["hash"] == gateway.rpc("eth_getBlockByNumber", [hex(head), False])["hash"]
    answers = node.batch([("eth_chainId", []), ("eth_getBlockByNumber", [hex(head), False])])
    assert int(answers[0], 16) == gateway.chain_id
    assert answers[1]["hash"] == block["hash"]
    assert node.round_trips == 3


def test_an_error_answer_is_a_chain_error_naming_the_call(anvil_url: str) -> None:
    node = JsonRpc(anvil_url)
    with pytest.raises(ChainError, match="eth_noSuchMethod"):
        node.call("eth_noSuchMethod")
    with pytest.raises(ChainError, match="eth_noSuchMethod"):
        node.batch([("eth_chainId", []), ("eth_noSuchMethod", [])])


def test_a_node_that_cannot_be_reached_is_chain_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ChainUnavailableError):
        JsonRpc(f"http://127.0.0.1:{port}").call("eth_blockNumber")


class _ClosesAfterEachAnswer(BaseHTTPRequestHandler):
    """Answers eth_blockNumber as HTTP/1.1 without "Connection: close", then closes the
    connection: what a node does to a kept connection at its idle timeout."""

    protocol_version = "HTTP/1.1"
    answered = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x2a"}).encode()
        type(self).answered += 1  # before the answer: the client may read it at once
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosesAfterEachAnswer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_kept_connection_the_node_closed_is_replaced_and_the_read_asked_again(
        closing_server: str) -> None:
    _ClosesAfterEachAnswer.answered = 0
    node = JsonRpc(closing_server)
    assert [node.call("eth_blockNumber") for _ in range(3)] == ["0x2a"] * 3
    assert _ClosesAfterEachAnswer.answered == 3


def test_a_request_never_to_be_sent_twice_finds_a_closed_kept_connection_before_sending(
        closing_server: str) -> None:
    """A broadcast (``retry=False``) on a kept connection the node closed while it was idle
    goes out on a new one, once: the connection is probed before, not retried after."""
    _ClosesAfterEachAnswer.answered = 0
    node = JsonRpc(closing_server)
    for _ in range(3):
        assert node.answer("eth_sendRawTransaction", ["0x02"], retry=False)["result"] == "0x2a"
        time.sleep(0.05)  # idle: the node's close reaches the client
    assert _ClosesAfterEachAnswer.answered == 3


class _DropsTheSecondRequest(BaseHTTPRequestHandler):
    """Answers the first request of a connection; reads the second and closes the connection
    without an answer (a node that went away in the middle of it)."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        first = request[0] if isinstance(request, list) else request
        type(self).seen.append(first["method"])
        if getattr(self, "answered_one", False):
            self.close_connection = True
            return
        self.answered_one = True
        body = json.dumps({"jsonrpc": "2.0", "id": first["id"], "result": "0x2a"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_read_lost_on_a_kept_connection_is_asked_again_and_a_broadcast_is_not() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DropsTheSecondRequest)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        node = JsonRpc(f"http://127.0.0.1:{server.server_address[1]}")
        _DropsTheSecondRequest.seen = []
        assert node.call("eth_blockNumber") == "0x2a"
        assert node.call("eth_blockNumber") == "0x2a"  # lost, then asked on a new connection
        assert _DropsTheSecondRequest.seen == ["eth_blockNumber"] * 3
        node.close()
        _DropsTheSecondRequest.seen = []
        send = ("eth_sendRawTransaction", ["0x02"])
        assert node.answer(*send, retry=False)["result"] == "0x2a"
        with pytest.raises(ChainUnavailableError):
            node.answer(*send, retry=False)
        assert _DropsTheSecondRequest.seen == ["eth_sendRawTransaction"] * 2  # sent once each
        assert node.answer(*send, retry=False)["result"] == "0x2a"  # (a new connection)
        with pytest.raises(ChainUnavailableError):
            node.answers([send, send], retry=False)
        assert _DropsTheSecondRequest.seen == ["eth_sendRawTransaction"] * 4
    finally:
        server.shutdown()
        server.server_close()


class _RecordingProxy(BaseHTTPRequestHandler):
    """An HTTP proxy that forwards a POST to the URL it was asked for and notes that URL."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen.append(self.path)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        forwarded = urllib.request.Request(self.path, data=body,
                                           headers={"Content-Type": "application/json"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                forwarded, timeout=10) as answer:
            data = answer.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_the_environments_proxy_for_the_node_is_used_unless_the_node_is_bypassed(
        anvil_url: str, gateway: ChainGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingProxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _RecordingProxy.seen = []
        for name in ("no_proxy", "NO_PROXY", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        assert int(JsonRpc(anvil_url).call("eth_chainId"), 16) == gateway.chain_id
        assert _RecordingProxy.seen == [anvil_url]  # the whole URL, as a proxy is asked
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        assert int(JsonRpc(anvil_url).call("eth_chainId"), 16) == gateway.chain_id
        assert _RecordingProxy.seen == [anvil_url]  # bypassed: not through the proxy
    finally:
        server.shutdown()
        server.server_close()


def test_the_gateways_fees_are_web3s_read_raw_in_one_round_trip(gateway: ChainGateway) -> None:
    """``ChainGateway.fees`` reads the latest block and the priority fee raw through the lean
    client: the same (max fee, priority fee) as web3's formatted calls, one round trip."""
    block = gateway.w3.eth.get_block("latest")
    priority = int(gateway.w3.eth.max_priority_fee)
    expected = (int(block.get("baseFeePerGas") or 0) * 2 + priority, priority)
    before = gateway.round_trips
    assert gateway.fees() == expected
    assert gateway.round_trips - before == 1


class _BasicAuthNode(BaseHTTPRequestHandler):
    """A node behind HTTP basic auth (alice / s3cret:x): 401 without the right header."""

    protocol_version = "HTTP/1.1"
    paths: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).paths.append(self.path)
        expected = "Basic " + base64.b64encode(b"alice:s3cret:x").decode()
        ok = self.headers.get("Authorization") == expected
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x2a"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if ok else 0))
        self.end_headers()
        if ok:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_node_behind_basic_auth_is_read_with_the_urls_credentials() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthNode)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        _BasicAuthNode.paths = []
        assert JsonRpc(f"http://alice:s3cret%3Ax@127.0.0.1:{port}/rpc").call(
            "eth_blockNumber") == "0x2a"
        assert _BasicAuthNode.paths == ["/rpc"]  # the credentials never in the path
        with pytest.raises(ChainError, match="HTTP 401"):
            JsonRpc(f"http://127.0.0.1:{port}/rpc").call("eth_blockNumber")
    finally:
        server.shutdown()
        server.server_close()


def test_the_gateways_batches_and_receipts_go_through_the_lean_client(
        gateway: ChainGateway) -> None:
    """``rpc_batch`` (the outbox's broadcasts and receipts) and ``receipt`` are sent by the
    lean client, not web3's provider; an error answer stays in its place, mapped as before."""
    provider, lean = gateway.provider.round_trips, gateway.reads.round_trips
    refused, chain_id = gateway.rpc_batch([("eth_sendRawTransaction", ["0x02"]),
                                           ("eth_chainId", [])])
    assert isinstance(refused, ChainError) and "eth_sendRawTransaction failed" in str(refused)
    assert int(chain_id, 16) == gateway.chain_id
    assert gateway.receipt("0x" + "00" * 32) is None
    assert gateway.rpc_batch([("eth_getTransactionReceipt", ["0x" + "00" * 32])],
                             drop_logs=True) == [None]
    assert gateway.reads.round_trips - lean == 3
    assert gateway.provider.round_trips == provider
