"""An ASGI app whose import never ends: an API process that hangs in start-up, before it
listens (tests/ledger/test_serving.py)."""

from __future__ import annotations

import time

time.sleep(3600)

app = None
