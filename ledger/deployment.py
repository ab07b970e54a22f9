"""Deploy the alliance's contracts and remember where they are.

The deployment record (chain id, addresses, block) is kept in ``<data_dir>/deployment.json``
so the service, the CLI and auditors find the same contracts after a restart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .chain.gateway import ChainGateway, error_selectors
from .chain.sender import TransactionSender
from .clearing.clients import ClearingClient, SettlementTokenClient
from .contracts.client import TimelockClient
from .contracts.compiler import Artifact, compile_contracts
from .coupons.clients import CouponBookClient
from .errors import LedgerConfigError, LedgerNotFoundError
from .items.clients import ItemRegistryClient
from .members.clients import ConsentLedgerClient
from .memberships.clients import MembershipCardsClient
from .merchants.clients import FactoryClient, RegistryClient
from .points.clients import PointProgramClient
from .settings import Settings

log = logging.getLogger(__name__)

SETTLEMENT_UNIT = "CNY-fen"


@dataclass(frozen=True)
class Deployment:
    """Where the alliance's contracts live on one chain."""

    chain_id: int
    registry: str
    factory: str
    block: int
    clearing: str
    settlement_token: str
    timelock: str
    settlement_unit: str = SETTLEMENT_UNIT
    items: str = ""
    coupon_book: str = ""
    consent_ledger: str = ""
    memberships: str = ""

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise LedgerNotFoundError(f"no deployment recorded at {path}; run `alliance deploy`"
                                      ) from exc
        except TypeError as exc:
            raise LedgerNotFoundError(f"the deployment at {path} is from an older version; "
                                      "delete it (and the chain state) and deploy again") from exc


def deployment_path(settings: Settings) -> Path:
    return settings.data_dir / "deployment.json"


class Contracts:
    """The compiled artifacts and typed clients of one deployment."""

    def __init__(self, gateway: ChainGateway, artifacts: Mapping[str, Artifact],
                 deployment: Deployment) -> None:
        self.gateway = gateway
        self.artifacts = artifacts
        self.deployment = deployment
        gateway.add_error_abis(error_selectors(a.abi for a in artifacts.values()))
        self.registry = RegistryClient(gateway, artifacts["AllianceRegistry"].abi,
                                       deployment.registry)
        self.factory = FactoryClient(gateway, artifacts["PointProgramFactory"].abi,
                                     deployment.factory)
        self.clearing = ClearingClient(gateway, artifacts["Clearing"].abi, deployment.clearing)
        self.settlement_token = SettlementTokenClient(
            gateway, artifacts["SettlementToken"].abi, deployment.settlement_token)
        self.timelock = TimelockClient(gateway, artifacts["AllianceTimelock"].abi,
                                       deployment.timelock)
        # Deployments recorded before coupons existed have none (coupon calls then refuse).
        self.coupons: CouponBookClient | None = (
            CouponBookClient(gateway, artifacts["CouponBook"].abi, deployment.coupon_book)
            if deployment.coupon_book else None)
        self._programs: dict[str, PointProgramClient] = {}
        self.items = (ItemRegistryClient(gateway, artifacts["ItemRegistry"].abi, deployment.items)
                      if deployment.items else None)
        self.consent = (ConsentLedgerClient(gateway, artifacts["ConsentLedger"].abi,
                                            deployment.consent_ledger)
                        if deployment.consent_ledger else None)
        self.memberships = (
            MembershipCardsClient(gateway, artifacts["MembershipCards"].abi,
                                  deployment.memberships)
            if deployment.memberships else None)

    def program(self, address: str) -> PointProgramClient:
        client = self._programs.get(address)
        if client is None:
            client = PointProgramClient(self.gateway, self.artifacts["PointProgram"].abi, address)
            self._programs[address] = client
        return client


def deploy(gateway: ChainGateway, admin: TransactionSender, artifacts: Mapping[str, Artifact],
           *, operator: str, minter: str, timelock_delay: int = 0,
           settlement_unit: str = SETTLEMENT_UNIT, coupon_base_uri: str = "") -> Deployment:
    """Deploy timelock, registry, factory, settlement token and clearing, wire them, hand the
    admin role to the timelock, and return the deployment record.

    ``admin`` deploys and becomes the timelock's only proposer and executor; ``operator``
    gets the registry's OPERATOR_ROLE and ``minter`` the token's MINTER_ROLE. Once wired,
    the admin key holds no role on the registry itself: every admin action goes through the
    timelock (``timelock_delay`` seconds; 0 only on a dev chain).
    """
    if timelock_delay == 0 and not gateway.is_dev_chain:
        raise LedgerConfigError("a timelock delay of 0 is allowed on a local dev chain only; "
                                "set ALLIANCE_TIMELOCK_DELAY_S")
    gateway.add_error_abis(error_selectors(a.abi for a in artifacts.values()))

    def create(name: str, *args: object) -> tuple[str, int]:
        art = artifacts[name]
        receipt = admin.transact(to=None, data=gateway.encode_deploy(art.abi, art.bytecode,
                                                                      list(args)))
        return str(receipt["contractAddress"]), int(receipt["blockNumber"])

    timelock, _ = create("AllianceTimelock", timelock_delay, admin.address)
    reg = artifacts["AllianceRegistry"].abi
    registry, _ = create("AllianceRegistry", admin.address, operator, settlement_unit)
    factory, block = create("PointProgramFactory", registry)
    admin.transact(to=registry, data=gateway.encode_call(reg, "setFactory", [factory]))
    token, _ = create("SettlementToken", timelock, minter,
                      f"Alliance settlement {settlement_unit}", "ASU")
    clearing, _ = create("Clearing", registry, token)
    admin.transact(to=registry, data=gateway.encode_call(reg, "setClearing", [clearing]))
    items, _ = create("ItemRegistry", registry)
    consent, _ = create("ConsentLedger", registry)
    # The coupon book is named in the clearing while the deployer still holds the admin role.
    coupon_book, _ = create("CouponBook", registry, coupon_base_uri)
    admin.transact(to=clearing, data=gateway.encode_call(artifacts["Clearing"].abi,
                                                         "setCouponBook", [coupon_book]))
    memberships, _ = create("MembershipCards", registry)
    admin_role = b"\0" * 32
    admin.transact(to=registry, data=gateway.encode_call(reg, "grantRole",
                                                         [admin_role, timelock]))
    admin.transact(to=registry, data=gateway.encode_call(reg, "renounceRole",
                                                         [admin_role, admin.address]))
    deployment = Deployment(chain_id=gateway.chain_id, registry=registry, factory=factory,
                            block=block, clearing=clearing, settlement_token=token,
                            timelock=timelock, settlement_unit=settlement_unit, items=items,
                            coupon_book=coupon_book, consent_ledger=consent,
                            memberships=memberships)
    log.info("deployed registry %s, factory %s, clearing %s, settlement token %s, timelock %s "
             "(delay %d s) on chain %d", registry, factory, clearing, token, timelock,
             timelock_delay, gateway.chain_id)
    return deployment


# Contracts added after the first deployments, each built from the registry alone and holding
# no role: an older deployment.json gets them on its next start.
ADDED_LATER: tuple[tuple[str, str], ...] = (
    ("items", "ItemRegistry"),
    ("consent_ledger", "ConsentLedger"),
    ("memberships", "MembershipCards"),
)


def load_or_deploy(settings: Settings, gateway: ChainGateway, admin: TransactionSender, *,
                   operator: str, minter: str) -> Contracts:
    """Give the recorded deployment if its contracts exist on this chain, else deploy anew."""
    artifacts = compile_contracts(settings)
    path = deployment_path(settings)
    if path.exists():
        dep = Deployment.load(path)
        code = gateway.code(dep.registry) if dep.chain_id == gateway.chain_id else b""
        if dep.chain_id == gateway.chain_id and len(code) > 0:
            # A deployment from before a contract that needs no role: add the contract.
            for field, contract in ADDED_LATER:
                if not getattr(dep, field):
                    art = artifacts[contract]
                    receipt = admin.transact(to=None, data=gateway.encode_deploy(
                        art.abi, art.bytecode, [dep.registry]))
                    added: dict[str, Any] = {field: str(receipt["contractAddress"])}
                    dep = replace(dep, **added)
                    dep.save(path)
                    log.info("added the %s %s to the recorded deployment", contract,
                             getattr(dep, field))
            return Contracts(gateway, artifacts, dep)
        log.warning("recorded deployment is not on this chain; deploying anew")
    dep = deploy(gateway, admin, artifacts, operator=operator, minter=minter,
                 timelock_delay=settings.timelock_delay_s)
    dep.save(path)
    return Contracts(gateway, artifacts, dep)
