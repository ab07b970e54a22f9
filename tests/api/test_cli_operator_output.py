"""What the operator's commands print: nothing an operator copies is cut, and secrets are
printed only when they are created. Run as the operator runs them: the real `alliance`
command, piped (as to a file) at 80 columns."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from ledger.alliance import Alliance
from ledger.merchants.service import admit_merchant
from ledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _alliance(settings: Settings, *args: str) -> str:
    env = dict(os.environ, ALLIANCE_DATA_DIR=str(settings.data_dir),
               ALLIANCE_RPC_URL=str(settings.rpc_url), ALLIANCE_CHAIN_ID="31337",
               ALLIANCE_ARTIFACTS_DIR=str(settings.artifacts_dir), COLUMNS="80")
    done = subprocess.run([str(ROOT / ".venv/bin/alliance"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_merchant_list_at_80_columns_shows_every_address_whole_and_offers_json(
        settings: Settings) -> None:
    alliance = Alliance.open(settings)
    names = ["Grand Plaza Department Store of the Eastern Riverside District", "Corner Cafe"]
    admitted = [admit_merchant(alliance, name=n, symbol=f"M{i}", rate=i + 1)
                for i, n in enumerate(names)]
    alliance.close()
    out = _alliance(settings, "merchant", "list")
    for m in admitted:
        assert m.program is not None and m.program in out, out
        assert m.name in " ".join(out.split()), out
    listed = json.loads(_alliance(settings, "merchant", "list", "--json"))
    assert [(m["merchant_id"], m["program"]) for m in listed] == [
        (m.merchant_id, m.program) for m in admitted]


def test_demo_seed_prints_secrets_only_when_it_creates_them(settings: Settings) -> None:
    first = _alliance(settings, "demo", "seed")
    creds = json.loads((settings.data_dir / "demo-credentials.json").read_text())
    secrets = [m["secret"] for m in creds["merchants"]] + [creds["admin"]["secret"]]
    assert all(s in first for s in secrets)
    again = _alliance(settings, "demo", "seed")
    assert not any(s in again for s in secrets), again
    assert "already seeded" in again
    for m in creds["merchants"]:
        assert m["program"] in again  # what an operator copies is still there, whole
    # Each labelled address sits on one line with its label.
    assert all(re.search(rf"program\s+{m['program']}", again) for m in creds["merchants"])
