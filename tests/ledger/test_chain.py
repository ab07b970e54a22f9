"""The chain side of the ledger: the local anvil keeps its state across restarts, and the
sender gets a dropped transaction mined by rebroadcast or a fee-bumped replacement."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_account import Account

from ledger.chain import anvil
from ledger.chain.gateway import ChainGateway, CountingProvider
from ledger.chain.sender import SentTx, TransactionSender
from ledger.settings import ANVIL_OPERATOR_KEY, Settings


def test_local_chain_restart_keeps_state_and_reuses_a_running_node(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    url = anvil.ensure_running(settings)
    try:
        assert anvil.ensure_running(settings) == url  # reused, not a second node
        gw = ChainGateway(url)
        sender = TransactionSender(gw, ANVIL_OPERATOR_KEY)
        target = Account.create().address
        gw.rpc("anvil_setBalance", [target, hex(12345)])
        sender.transact(to=target, data=b"")
        block = gw.block_number()
    finally:
        assert anvil.stop(settings)
    assert not anvil.status(settings).running
    url2 = anvil.ensure_running(settings)
    try:
        gw2 = ChainGateway(url2)
        assert gw2.block_number() >= block
        assert int(gw2.w3.eth.get_balance(target)) == 12345  # type: ignore[arg-type]
    finally:
        anvil.stop(settings)


def test_a_dropped_transaction_is_replaced_with_a_fee_bump_and_mined(gateway: ChainGateway
                                                                      ) -> None:
    key = Account.create()
    gateway.rpc("anvil_setBalance", [key.address, hex(10**20)])
    sender = TransactionSender(gateway, key.key, receipt_timeout_s=0.3)
    gateway.rpc("evm_setAutomine", [False])
    try:
        sent = sender.send(to=Account.create().address, data=b"", gas=21_000)
        gateway.rpc("anvil_dropTransaction", [sent.tx_hash])
        assert gateway.transaction(sent.tx_hash) is None
        gateway.rpc("evm_setIntervalMining", [1])
        receipt = sender.wait(sent, timeout_s=20)
    finally:
        gateway.rpc("evm_setIntervalMining", [0])
        gateway.rpc("evm_setAutomine", [True])
    assert receipt["status"] == 1
    assert gateway.nonce(key.address, "latest") == sent.nonce + 1  # exactly one landed


def test_wait_returns_the_original_receipt_when_it_lands_before_its_replacement(
        gateway: ChainGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Account.create()
    gateway.rpc("anvil_setBalance", [key.address, hex(10**20)])
    sender = TransactionSender(gateway, key.key, receipt_timeout_s=0.2)
    real_replace = TransactionSender.replace

    def original_lands_first(self: TransactionSender, stuck: SentTx) -> SentTx:
        gateway.rpc("evm_mine")  # the original is mined just before the replacement is sent
        return real_replace(self, stuck)

    gateway.rpc("evm_setAutomine", [False])
    try:
        sent = sender.send(to=Account.create().address, data=b"", gas=21_000)
        monkeypatch.setattr(TransactionSender, "replace", original_lands_first)
        receipt = sender.wait(sent, timeout_s=10)
    finally:
        gateway.rpc("evm_setAutomine", [True])
    assert receipt["status"] == 1 and receipt["transactionHash"] == sent.tx_hash


def test_the_node_is_reached_through_the_proxy_the_environment_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment is read once per process, not per request, and still honoured: a
    node behind an HTTP proxy (HTTP_PROXY) is reached through it, and NO_PROXY exempts it."""
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(self.path)  # a proxied request names the whole URL
            out = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "0x7a69"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        node = "http://alliance-node.invalid:8545"
        provider = CountingProvider(node, timeout=5)
        for _ in range(2):
            assert provider.make_request("eth_chainId", [])["result"] == "0x7a69"
        assert seen == [node + "/", node + "/"]
        monkeypatch.setenv("NO_PROXY", "alliance-node.invalid")
        with pytest.raises(Exception):  # noqa: B017 - any connection error: the name is unknown
            CountingProvider(node, timeout=5).make_request("eth_chainId", [])
        assert len(seen) == 2
    finally:
        server.shutdown()
