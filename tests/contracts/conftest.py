"""Contract fixtures: the alliance deployed once per module on the session's anvil, merchants
admitted, and every test isolated by an EVM snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.gateway import ChainGateway, error_selectors
from ledger.chain.sender import TransactionSender
from ledger.contracts.clients import (
    ClearingClient,
    ContractClient,
    FactoryClient,
    PointProgramClient,
    ProgramConfig,
    RegistryClient,
    SettlementTokenClient,
)
from ledger.contracts.compiler import Artifact, compile_sources
from ledger.contracts.deploy import deploy
from ledger.settings import ANVIL_OPERATOR_KEY

FIXTURES = Path(__file__).parent / "fixtures"
DAY = 86400


@dataclass
class Chain:
    gateway: ChainGateway
    artifacts: dict[str, Artifact]
    operator: TransactionSender
    registry: RegistryClient
    factory: FactoryClient
    clearing: ClearingClient
    token: SettlementTokenClient

    def op(self, contract: ContractClient, fn: str, *args: object) -> dict[str, object]:
        """Send ``fn`` from the operator (fixed gas: a revert happens on chain, decoded)."""
        return self.operator.transact(to=contract.address, data=contract.encode(fn, *args),
                                      gas=5_000_000)

    def sender(self, account: LocalAccount) -> TransactionSender:
        self.gateway.rpc("anvil_setBalance", [account.address, hex(10**21)])
        return TransactionSender(self.gateway, account.key)

    def admit_account(self, acct: LocalAccount) -> int:
        """Admit a merchant signing with ``acct`` (no program yet); give its id."""
        reg = self.registry
        receipt = self.operator.transact(to=reg.address, data=reg.encode(
            "admitMerchant", acct.address, b"\x00" * 32))
        (mid,) = [int(a["merchantId"]) for n, a, _ in reg.decode_logs(receipt["logs"])
                  if n == "MerchantAdmitted"]
        return mid

    def admit(self, *, symbol: str = "PTS", config: ProgramConfig | None = None,
              rate: int = 1) -> Merchant:
        acct = Account.create()
        reg = self.registry
        mid = self.admit_account(acct)
        self.operator.transact(to=self.factory.address, data=self.factory.encode(
            "createProgram", mid, f"{symbol} Points", symbol,
            (config or ProgramConfig()).as_tuple()))
        self.operator.transact(to=reg.address, data=reg.encode("setRate", mid, rate))
        program = reg.merchant(mid).program
        assert program is not None
        return Merchant(mid, acct, self.sender(acct),
                        PointProgramClient(self.gateway, self.artifacts["PointProgram"].abi,
                                           program))

    def travel(self, seconds: int) -> None:
        self.gateway.rpc("evm_increaseTime", [seconds])
        self.gateway.rpc("evm_mine")

    def now(self) -> int:
        return int(self.gateway.block("latest")["timestamp"])


@dataclass
class Merchant:
    merchant_id: int
    account: LocalAccount
    sender: TransactionSender
    program: PointProgramClient

    def call(self, fn: str, *args: object) -> dict[str, object]:
        """Send ``fn`` on the program from the merchant's account (no gas estimate, so a
        revert happens on chain and comes back decoded)."""
        return self.sender.transact(to=self.program.address,
                                    data=self.program.encode(fn, *args), gas=3_000_000)

    def call_on(self, contract: ContractClient, fn: str, *args: object) -> dict[str, object]:
        """Send ``fn`` on another contract from the merchant's account."""
        return self.sender.transact(to=contract.address, data=contract.encode(fn, *args),
                                    gas=5_000_000)


@pytest.fixture(scope="module")
def chain(anvil_url: str, artifacts: dict[str, Artifact]) -> Iterator[Chain]:
    gw = ChainGateway(anvil_url, error_abis=error_selectors(a.abi for a in artifacts.values()))
    operator = TransactionSender(gw, ANVIL_OPERATOR_KEY)
    snap = gw.rpc("evm_snapshot")
    dep = deploy(gw, operator, artifacts)
    yield Chain(gw, dict(artifacts), operator,
                RegistryClient(gw, artifacts["AllianceRegistry"].abi, dep.registry),
                FactoryClient(gw, artifacts["PointProgramFactory"].abi, dep.factory),
                ClearingClient(gw, artifacts["Clearing"].abi, dep.clearing),
                SettlementTokenClient(gw, artifacts["SettlementToken"].abi,
                                      dep.settlement_token))
    gw.rpc("evm_revert", [snap])


@pytest.fixture(autouse=True)
def _isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    if "chain" not in request.fixturenames:
        yield
        return
    chain: Chain = request.getfixturevalue("chain")
    snap = chain.gateway.rpc("evm_snapshot")
    # A fresh sender per test: nonces must follow the chain after each revert.
    chain.operator = TransactionSender(chain.gateway, ANVIL_OPERATOR_KEY)
    yield
    chain.gateway.rpc("evm_revert", [snap])


@pytest.fixture(scope="module")
def wallet_artifact() -> Artifact:
    src = (FIXTURES / "TestWallet.sol").read_text()
    return compile_sources({"tests/contracts/fixtures/TestWallet.sol": src})["TestWallet"]
