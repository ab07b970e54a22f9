"""The console's live figures by server-sent events (``/console/api/figures/stream``), against
the real service on loopback (uvicorn, its workers sending to anvil and indexing, SQLite): in
Debian's Chromium, the figures change on screen after an issue without a reload and without
polling ``/figures``; with the stream refused, the page falls back to polling and still
follows; over HTTP, the stream's scoping, bound, heartbeat and end. Screenshots go to
``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir), never committed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from playwright.sync_api import Browser, Request

import api.routes.console as console_routes
from api.client import sign_request
from tests.e2e.test_console import Env, _context, _issue, _shot, _sign_in, _wait_kpi

pytestmark = pytest.mark.e2e
STREAM = "/console/api/figures/stream"
SESSION = "/console/api/session"


@pytest.fixture
def env(settings: object) -> Iterator[Env]:
    e = Env(settings)  # type: ignore[arg-type]
    try:
        yield e
    finally:
        e.close()


def _cookie(env: Env, key_id: str, secret: str) -> dict[str, str]:
    """The headers of a fresh console session of this key."""
    h = sign_request(key_id, secret, "POST", SESSION, b"{}")
    r = httpx.post(env.url + SESSION, content=b"{}", timeout=30, headers={
        **h, "Content-Type": "application/json", "X-Console": "1"})
    assert r.status_code == 200, r.text
    return {"Cookie": f"alliance_console={r.cookies['alliance_console']}"}


def _read_until(r: Iterator[str], want: str, timeout_s: float) -> list[str]:
    """The stream's lines (``r``: its line iterator) up to and including the first that
    starts with ``want``."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    for line in r:
        lines.append(line)
        if line.startswith(want):
            return lines
        assert time.monotonic() < deadline, lines
    raise AssertionError(f"the stream ended before {want!r}: {lines}")


def test_figures_change_on_screen_from_the_stream_without_polling_or_a_reload(
        env: Env, browser: Browser, shots: Path) -> None:
    outside: list[str] = []
    context = _context(browser, env, outside)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    polls: list[str] = []
    streams: list[str] = []

    def seen(req: Request) -> None:
        if req.url.startswith(env.url + "/console/api/figures/stream"):
            streams.append(req.url)
        elif req.url.startswith(env.url + "/console/api/figures"):
            polls.append(req.url)

    page.on("request", seen)
    _sign_in(page, env, env.store.key_id, env.store.secret)
    page.wait_for_selector("#today")
    page.wait_for_selector("body[data-live='stream']", timeout=30_000)
    _wait_kpi(page, "issued", "0")
    polled_before = len(polls)
    navigations = page.evaluate("performance.getEntriesByType('navigation').length")

    _issue(env.store_api, Account.create().address, 1200, "SSE-1")
    _wait_kpi(page, "issued", "1,200")
    _issue(env.store_api, Account.create().address, 300, "SSE-2")
    _wait_kpi(page, "issued", "1,500")
    _shot(page, shots, "01-figures-from-the-stream")
    # From the stream: no /figures read since it went live, one stream, no reload.
    assert len(polls) == polled_before, polls
    assert len(streams) == 1, streams
    assert page.evaluate("performance.getEntriesByType('navigation').length") == navigations
    assert page.get_attribute("#today .live", "title") == "Pushed as blocks are indexed"
    assert not errors, errors
    assert not outside, outside
    context.close()

    # The stream refused (a proxy that drops it, say): the page polls and still follows.
    context = _context(browser, env, outside)
    context.route("**/console/api/figures/stream*", lambda route: route.abort())
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, env, env.store.key_id, env.store.secret)
    page.wait_for_selector("#today")
    _wait_kpi(page, "issued", "1,500")
    assert page.get_attribute("body", "data-live") == "poll"
    _issue(env.store_api, Account.create().address, 40, "SSE-3")
    _wait_kpi(page, "issued", "1,540")
    assert page.get_attribute("#today .live", "title") == "Read every 2 s"
    _shot(page, shots, "02-fallback-to-polling")
    assert not errors, errors
    context.close()


def test_the_stream_is_scoped_bounded_beats_and_ends(env: Env,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_routes, "HEARTBEAT_S", 0.5)
    store = _cookie(env, env.store.key_id, env.store.secret)
    url = env.url + STREAM
    with httpx.Client(timeout=30) as http:
        # No session: 401; another merchant's figures: 403 (problem+json, like /figures).
        r = http.get(url)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        other = http.get(url, params={"merchant_id": env.cafe.merchant_id}, headers=store)
        assert other.status_code == 403
        assert other.headers["content-type"].startswith("application/problem+json")

        # The first event is the merchant's own figures, then heartbeats while nothing moves.
        with http.stream("GET", url, headers=store) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            it = r.iter_lines()
            lines = _read_until(it, "data:", 30)
            assert "event: figures" in lines and lines[0] == "retry: 1000"
            data = lines[-1].removeprefix("data: ")
            assert f'"merchant_id":{env.store.merchant_id}' in data
            assert f'"merchant_id":{env.cafe.merchant_id}' not in data
            _read_until(it, ": heartbeat", 10)

            # An issue pushes new figures on this open stream.
            _issue(env.store_api, Account.create().address, 75, "SSE-HTTP-1")
            lines = _read_until(it, 'data: {"day_start"', 30)
            while '"issued":75' not in lines[-1]:
                lines = _read_until(it, 'data: {"day_start"', 30)

        # At most STREAMS_PER_SESSION at once per session; another session has its own.
        limit = console_routes.STREAMS_PER_SESSION
        open_streams = [http.stream("GET", url, headers=store) for _ in range(limit)]
        responses = [s.__enter__() for s in open_streams]
        try:
            assert all(x.status_code == 200 for x in responses)
            # Kept: a line iterator dropped closes its connection (and the stream).
            readers = [x.iter_lines() for x in responses]
            for it in readers:
                _read_until(it, "data:", 30)
            refused = http.get(url, headers=store)
            assert refused.status_code == 429
            assert refused.json()["type"].endswith("too-many-streams")
            fresh = _cookie(env, env.store.key_id, env.store.secret)
            with http.stream("GET", url, headers=fresh) as ok:
                assert ok.status_code == 200
        finally:
            for s in open_streams:
                s.__exit__(None, None, None)
        # A closed stream gives its slot back (the server notices within a tick or two).
        deadline = time.monotonic() + 10
        while True:
            with http.stream("GET", url, headers=store) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the closed streams' slots were not given back"
            time.sleep(0.2)

    # A stream ends by itself after STREAM_MAX_S (the browser reconnects): a service that
    # shuts down waits for no stream longer than that.
    monkeypatch.setattr(console_routes, "STREAM_MAX_S", 1.5)
    with httpx.Client(timeout=30) as http, http.stream("GET", url, headers=store) as r:
        t0 = time.monotonic()
        lines = list(r.iter_lines())
        assert time.monotonic() - t0 < 10 and any(x.startswith("data:") for x in lines)
    with httpx.Client(timeout=30) as http, http.stream("GET", url, headers=store) as r:
        assert r.status_code == 200
        t0 = time.monotonic()
        env.service.stop()
        assert time.monotonic() - t0 < 15
