"""A constant ASGI app for the serving tests: every answer names the process that gave it.

``/busy?s=N`` keeps the event loop busy (CPU-bound) for N seconds before it answers, as a slow
request would; ``/hang`` blocks the event loop for an hour, as a stuck C call would. With
``PID_APP_HANG_ONCE`` naming a file, the first process to import this module after the file
is made removes it and hangs in start-up (before it listens)."""

from __future__ import annotations

import os
import time
from typing import Any

if os.environ.get("PID_APP_HANG_ONCE"):
    try:
        os.unlink(os.environ["PID_APP_HANG_ONCE"])
    except FileNotFoundError:
        pass
    else:
        time.sleep(3600)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/hang":
        time.sleep(3600)  # blocks the loop: no heartbeat
    elif scope["path"] == "/busy":
        end = time.monotonic() + float(scope["query_string"].decode().split("=")[1])
        while time.monotonic() < end:  # the loop busy, the process healthy
            pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
