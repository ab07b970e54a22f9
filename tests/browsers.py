"""Starting a real browser in tests: Debian's Chromium (headless), driven by Playwright through
its executable-path option (``playwright install`` cannot download a browser here)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, BrowserType, sync_playwright

NEEDED = "Debian's chromium is needed (scripts/install.sh --test installs it)"


def launch(browser_type: BrowserType, *args: str) -> Browser:
    """Debian's Chromium, headless, with ``args`` after ``--no-sandbox`` (e.g. a fake camera)."""
    executable = shutil.which("chromium")
    assert executable, NEEDED
    return browser_type.launch(executable_path=executable, args=["--no-sandbox", *args])


@contextmanager
def chromium(*args: str) -> Iterator[Browser]:
    """Playwright started and Debian's Chromium launched, both closed on the way out: the
    body of the e2e tests' ``browser`` fixtures."""
    with sync_playwright() as p:
        b = launch(p.chromium, *args)
        try:
            yield b
        finally:
            b.close()
