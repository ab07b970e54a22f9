"""The README's up command, for real: `alliance up` on a loopback port with its own anvil,
then a demo merchant issues and a member redeems over HTTP, checked on the chain directly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from api.client import AllianceClient
from ledger.chain.gateway import ChainGateway
from ledger.clearing.clients import ClearingClient
from ledger.contracts.compiler import Artifact, compile_contracts
from ledger.points.clients import PointProgramClient
from ledger.settings import Settings
from tests.conftest import ARTIFACT_CACHE
from tests.ledger.helpers import sign_redemption
from tests.servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Artifact]
           ) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("up")
    port = free_port()
    # The session's compiled artifacts (the cache a second `up` finds): compiling every
    # contract again is the cache test's business, not this one's.
    env = dict(os.environ, ALLIANCE_DATA_DIR=str(data), COLUMNS="80",
               ALLIANCE_ARTIFACTS_DIR=str(ARTIFACT_CACHE))
    log = open(data / "up.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([str(ROOT / ".venv/bin/alliance"), "up", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, data / "up.log", timeout_s=300)
        yield url, data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        subprocess.run([str(ROOT / ".venv/bin/alliance"), "chain", "stop"], cwd=ROOT, env=env,
                       capture_output=True)


def test_up_serves_the_demo_alliance_and_its_docs(server: tuple[str, Path]) -> None:
    url, data = server
    creds = json.loads((data / "demo-credentials.json").read_text())
    names = {m["name"] for m in creds["merchants"]}
    assert names == {"Grand Plaza Department Store", "Starlight Cinema", "Corner Cafe"}
    assert httpx.get(url + "/docs").status_code == 200
    health = httpx.get(url + "/healthz").json()
    assert health["chain_id"] == 31337


def test_up_prints_each_address_on_one_line_with_its_label(server: tuple[str, Path]) -> None:
    _, data = server
    out = (data / "up.log").read_text()
    dep = json.loads((data / "deployment.json").read_text())
    assert re.search(rf"registry\s+{dep['registry']}", out), out
    creds = json.loads((data / "demo-credentials.json").read_text())
    assert all(m["secret"] in out for m in creds["merchants"])  # created by this start


def test_issue_and_redeem_over_http_land_on_chain(server: tuple[str, Path]) -> None:
    url, data = server
    creds = json.loads((data / "demo-credentials.json").read_text())
    store = next(m for m in creds["merchants"] if m["name"].startswith("Grand"))
    member = Account.create()
    with httpx.Client(base_url=url, timeout=30) as http:
        client = AllianceClient(http, store["key_id"], store["secret"])
        r = client.post("/v1/points/issue", {"member": member.address, "points": 500,
                                             "order_id": "E2E-1"})
        assert r.status_code == 202, r.text
        issued = client.wait_operation(r.json()["id"])
        assert issued["status"] == "confirmed"
        deadline = int(time.time()) + 600
        # The signing domain's salt is the program's registry (read from the chain).
        chain_gw = ChainGateway(json.loads((data / "chain" / "anvil.json").read_text())["url"])
        registry = chain_gw.call(store["program"], bytes.fromhex("7b103999"))[-20:].hex()
        sig = sign_redemption(member, program=store["program"], registry="0x" + registry,
                              chain_id=31337, amount=120,
                              merchant_id=store["merchant_id"], order_id="E2E-SALE",
                              nonce=0, deadline=deadline)
        r = client.post("/v1/points/redeem", {"member": member.address, "points": 120,
                                              "order_id": "E2E-SALE", "nonce": 0,
                                              "deadline": deadline, "signature": sig})
        assert client.wait_operation(r.json()["id"])["status"] == "confirmed"
    # Straight from the chain, not through the service:
    chain_url = json.loads((data / "chain" / "anvil.json").read_text())["url"]
    gw = ChainGateway(chain_url)
    arts = compile_contracts(Settings(data_dir=data, artifacts_dir=ARTIFACT_CACHE))
    program = PointProgramClient(gw, arts["PointProgram"].abi, store["program"])
    assert program.balance_of(member.address) == 380
    receipt = gw.receipt(issued["tx_hash"])
    assert receipt is not None and receipt["status"] == 1


def test_the_demo_shows_cross_merchant_clearing_on_chain(server: tuple[str, Path]) -> None:
    url, data = server
    creds = json.loads((data / "demo-credentials.json").read_text())
    ids = {m["name"].split()[0]: m["merchant_id"] for m in creds["merchants"]}
    wallet = creds["demo_wallet"]["address"]
    dep = json.loads((data / "deployment.json").read_text())
    chain_url = json.loads((data / "chain" / "anvil.json").read_text())["url"]
    gw = ChainGateway(chain_url)
    arts = compile_contracts(Settings(data_dir=data, artifacts_dir=ARTIFACT_CACHE))
    clearing = ClearingClient(gw, arts["Clearing"].abi, dep["clearing"])
    # 120 store points (1 fen) spent at the cafe; 200 converted into 40 cinema points (5 fen);
    # and a store coupon of 1,000 fen off used at the cafe (the demo's coupon campaign).
    nets = {name: clearing.position_of(1, mid)[0] for name, mid in ids.items()}
    assert nets == {"Grand": -320 - 1000, "Corner": 120 + 1000, "Starlight": 200}
    store = PointProgramClient(gw, arts["PointProgram"].abi, creds["merchants"][0]["program"])
    # The wallet also bought 600 points' worth at the store (its parking coupon, the demo's
    # purchase rule) and redeemed 100 of them for the tote bag, a gift (at the store itself:
    # nothing cleared).
    assert store.balance_of(wallet) == 1000 - 120 - 200 + 600 - 100
    offers = creds["offers"]
    shop = creds["merchants"][0]
    wanted = {offers["parking_campaign"], offers["gift_campaign"]}
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30) as http:
        while True:  # the server's indexer reads the seeded blocks in the background
            held = {c["campaign_id"] for c in AllianceClient(
                http, shop["key_id"], shop["secret"]).get(
                f"/v1/coupons/members/{wallet}").json()["coupons"]}
            if wanted <= held or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert wanted <= held
    admin = creds["admin"]
    with httpx.Client(base_url=url, timeout=30) as http:
        positions = AllianceClient(http, admin["key_id"], admin["secret"]).get(
            "/v1/admin/clearing/current").json()["positions"]
    assert sum(p["net"] for p in positions) == 0
