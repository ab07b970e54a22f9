"""Fixtures of the browser tests: one Chromium per test module (Debian's, through
tests/browsers.py) and a folder per test for the screenshots it keeps, under
``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browsers import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    root = os.environ.get("ALLIANCE_TEST_ARTIFACTS")
    base = Path(root) if root else tmp_path_factory.getbasetemp() / "artifacts"
    out = base / request.node.name
    out.mkdir(parents=True, exist_ok=True)
    return out
