"""Contract fixtures: the alliance deployed once per module on the session's anvil, merchants
admitted, and every test isolated by an EVM snapshot."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.gateway import ChainGateway, error_selectors
from ledger.chain.sender import TransactionSender
from ledger.clearing.clients import ClearingClient, SettlementTokenClient
from ledger.contracts.client import ContractClient, TimelockClient
from ledger.contracts.compiler import Artifact, compile_sources
from ledger.deployment import deploy
from ledger.errors import ChainError
from ledger.merchants.clients import FactoryClient, ProgramConfig, RegistryClient
from ledger.points.clients import PointProgramClient
from ledger.settings import ANVIL_ADMIN_KEY, ANVIL_MINTER_KEY, ANVIL_OPERATOR_KEY

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
    timelock: TimelockClient
    admin: TransactionSender
    minter: TransactionSender

    def op(self, contract: ContractClient, fn: str, *args: object) -> dict[str, object]:
        """Send ``fn`` from the operator (fixed gas: a revert happens on chain, decoded)."""
        return self.operator.transact(to=contract.address, data=contract.encode(fn, *args),
                                      gas=5_000_000)

    def gov(self, contract: ContractClient, fn: str, *args: object) -> dict[str, object]:
        """An admin action: the admin key schedules ``fn`` in the timelock (delay 0 on the
        test chain) and executes it; a revert of ``fn`` comes back decoded."""
        data = contract.encode(fn, *args)
        salt = os.urandom(32)
        tl = self.timelock
        self.admin.transact(to=tl.address, data=tl.encode(
            "schedule", contract.address, 0, data, b"\0" * 32, salt, 0), gas=500_000)
        return self.admin.transact(to=tl.address, data=tl.encode(
            "execute", contract.address, 0, data, b"\0" * 32, salt), gas=8_000_000)

    def mint(self, to: str, amount: int) -> dict[str, object]:
        """Mint settlement tokens from the minter's key."""
        return self.minter.transact(to=self.token.address,
                                    data=self.token.encode("mint", to, amount), gas=200_000)

    def sender(self, account: LocalAccount) -> TransactionSender:
        self.gateway.rpc("anvil_setBalance", [account.address, hex(10**21)])
        return TransactionSender(self.gateway, account.key)

    def admit_account(self, acct: LocalAccount, payout: str | None = None) -> int:
        """Admit a merchant signing with ``acct`` (no program yet); give its id."""
        reg = self.registry
        receipt = self.gov(reg, "admitMerchant", acct.address,
                           payout or Account.create().address, b"\x00" * 32)
        (mid,) = [int(a["merchantId"]) for n, a, _ in reg.decode_logs(receipt["logs"])  # type: ignore[arg-type]
                  if n == "MerchantAdmitted"]
        return mid

    def admit(self, *, symbol: str = "PTS", config: ProgramConfig | None = None,
              rate: int = 1) -> Merchant:
        """Admit a merchant with its program, rate and a fresh payout address in one admin
        action (the registry's admitMerchantWithProgram)."""
        acct, payout = Account.create(), Account.create().address
        reg = self.registry
        receipt = self.gov(reg, "admitMerchantWithProgram", (
            acct.address, payout, b"\x00" * 32, rate, f"{symbol} Points", symbol,
            (config or ProgramConfig()).as_tuple()))
        (mid,) = [int(a["merchantId"]) for n, a, _ in reg.decode_logs(receipt["logs"])  # type: ignore[arg-type]
                  if n == "MerchantAdmitted"]
        program = reg.merchant(mid).program
        assert program is not None
        return Merchant(mid, acct, self.sender(acct),
                        PointProgramClient(self.gateway, self.artifacts["PointProgram"].abi,
                                           program), payout)

    def travel(self, seconds: int) -> None:
        self.gateway.rpc("evm_increaseTime", [seconds])
        self.gateway.rpc("evm_mine")

    def now(self) -> int:
        return int(self.gateway.block("latest")["timestamp"])


def read_views(gateway: ChainGateway,
               calls: Sequence[tuple[ContractClient, str, tuple[Any, ...]]]
               ) -> list[tuple[Any, ...]]:
    """Read many views in one JSON-RPC batch (one round trip, all at the latest block), each
    decoded as ``ContractClient.view`` decodes it; a failed view raises its ChainError.

    The model tests check dozens of views after every step: one by one they cost more than
    the steps themselves."""
    answers = gateway.rpc_batch([
        ("eth_call", [{"to": c.address, "data": "0x" + c.encode(fn, *args).hex()}, "latest"])
        for c, fn, args in calls])
    out: list[tuple[Any, ...]] = []
    for (c, fn, _), answer in zip(calls, answers, strict=True):
        if isinstance(answer, ChainError):
            raise answer
        out.append(gateway.decode_output(c.abi, fn, bytes.fromhex(str(answer)[2:])))
    return out


@dataclass
class Merchant:
    merchant_id: int
    account: LocalAccount
    sender: TransactionSender
    program: PointProgramClient
    payout: str = ""

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
    admin = TransactionSender(gw, ANVIL_ADMIN_KEY)
    minter = TransactionSender(gw, ANVIL_MINTER_KEY)
    snap = gw.rpc("evm_snapshot")
    dep = deploy(gw, admin, artifacts, operator=operator.address, minter=minter.address)
    yield Chain(gw, dict(artifacts), operator,
                RegistryClient(gw, artifacts["AllianceRegistry"].abi, dep.registry),
                FactoryClient(gw, artifacts["PointProgramFactory"].abi, dep.factory),
                ClearingClient(gw, artifacts["Clearing"].abi, dep.clearing),
                SettlementTokenClient(gw, artifacts["SettlementToken"].abi,
                                      dep.settlement_token),
                TimelockClient(gw, artifacts["AllianceTimelock"].abi, dep.timelock),
                admin, minter)
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
    chain.admin = TransactionSender(chain.gateway, ANVIL_ADMIN_KEY)
    chain.minter = TransactionSender(chain.gateway, ANVIL_MINTER_KEY)
    yield
    chain.gateway.rpc("evm_revert", [snap])


@pytest.fixture(scope="module")
def wallet_artifact() -> Artifact:
    src = (FIXTURES / "TestWallet.sol").read_text()
    return compile_sources({"tests/contracts/fixtures/TestWallet.sol": src})["TestWallet"]
