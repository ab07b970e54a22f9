"""A lean JSON-RPC client for reads that are made often and want raw answers (the gateway's
``reads``: the indexer's tip, headers and logs, the redeem checks' batch, the fees).

web3's provider runs a call through its middleware, its request counter, ``requests``'
session machinery (adapters, hooks, cookie jar, header merging) and response formatters: on a
200-redemption block, about a fifth of the indexer's CPU went to the node's HTTP calls. This
client keeps one HTTP/1.1 keep-alive connection per thread (``http.client``), frames the
request with the stdlib ``json`` and gives the ``result`` as the node wrote it: numbers as
``0x`` hex strings, nothing formatted. A call or a batch is one round trip
(:attr:`JsonRpc.round_trips`).

A read that fails on a kept connection the node closed meanwhile (an idle keep-alive timeout)
is sent once more on a new one, which is safe for a read. A request that must not be sent
twice (``retry=False``: a broadcast, a node's ``evm_*`` helper) is never sent again: the kept
connection is probed first instead (a node that closed it has made it readable: at end of
file), as ``urllib3`` does for web3's provider, and a failure after that is reported. The
gateway sends its transactions through it so (:meth:`~ledger.chain.gateway.ChainGateway.send_raw`,
:meth:`~ledger.chain.gateway.ChainGateway.rpc_batch`).
Errors are the gateway's: a node that cannot be reached is a
:class:`~ledger.errors.ChainUnavailableError`, an error answer a :class:`~ledger.errors.ChainError`.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import threading
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import ChainError, ChainUnavailableError

# Failures of a kept connection that a second try on a fresh one may cure (the node closed
# it while it was idle); anything else is reported at once.
_STALE = (http.client.RemoteDisconnected, http.client.CannotSendRequest,
          http.client.BadStatusLine, BrokenPipeError, ConnectionResetError,
          ConnectionAbortedError)


class JsonRpc:
    """Raw JSON-RPC reads from one node over a keep-alive connection per thread."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) node URL: {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        if parts.username is not None:
            # A node behind HTTP basic auth (https://user:password@host), as ``requests``
            # sends it for web3's provider: the credentials go in the header, never the path.
            user = unquote(parts.username)
            password = unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        # The environment's proxy for the node's URL, read once (as the gateway's sessions
        # read it): plain HTTP is sent to the proxy with the whole URL, HTTPS is tunnelled.
        self._proxy: tuple[str, int | None] | None = None
        proxy = (None if urllib.request.proxy_bypass(parts.hostname)
                 else urllib.request.getproxies_environment().get(parts.scheme))
        if proxy:
            via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if via.hostname:
                self._proxy = (via.hostname, via.port)
                if not self._https:
                    self._path = parts._replace(netloc=parts.netloc.rpartition("@")[2],
                                                fragment="").geturl()
        self._timeout = timeout
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.round_trips = 0

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call's ``result``; an error answer raises :class:`ChainError`."""
        answer = self.answer(method, params)
        if "error" in answer:
            raise ChainError(f"{method} failed: {answer['error']}", rpc=answer["error"])
        return answer.get("result")

    def answer(self, method: str, params: Sequence[Any] = (), *,
               retry: bool = True) -> dict[str, Any]:
        """One call's whole answer (``result`` or ``error``), for a caller that maps an error
        answer itself; ``retry=False``: never sent twice (see the module's docstring)."""
        answer = self._post({"jsonrpc": "2.0", "id": 1, "method": method,
                             "params": list(params)}, retry=retry)
        if not isinstance(answer, dict):
            raise ChainError(f"{method}: the node answered {str(answer)[:200]}")
        return answer

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *,
              errors_in_place: bool = False) -> list[Any]:
        """Many calls in one round trip; results in the order of ``calls``. A call the node
        answered with an error raises :class:`ChainError` naming it (a read either has all
        its answers or is asked again), or with ``errors_in_place`` gives that
        :class:`ChainError` in its place (``ChainGateway.rpc_batch``'s shape)."""
        out: list[Any] = []
        for (method, _), answer in zip(calls, self.answers(calls), strict=True):
            if "error" in answer:
                failed = ChainError(f"{method} failed: {answer['error']}", rpc=answer["error"])
                if not errors_in_place:
                    raise failed
                out.append(failed)
                continue
            out.append(answer.get("result"))
        return out

    def answers(self, calls: Sequence[tuple[str, Sequence[Any]]], *, retry: bool = True,
                transform: Callable[[bytes], bytes] | None = None) -> list[dict[str, Any]]:
        """Many calls in one round trip: each call's whole answer (``result`` or ``error``),
        in the order of ``calls``; a call the node left unanswered raises :class:`ChainError`.
        ``retry=False``: never sent twice; ``transform``: applied to the answer's bytes before
        they are decoded (decoded as they came if it raises ValueError)."""
        if not calls:
            return []
        answers = self._post([{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                              for i, (m, p) in enumerate(calls)],
                             retry=retry, transform=transform)
        if not isinstance(answers, list):
            error = answers.get("error", answers) if isinstance(answers, dict) else answers
            raise ChainError(f"batch request failed: {str(error)[:500]}", rpc=error)
        by_id: dict[Any, Any] = {a.get("id"): a for a in answers if isinstance(a, dict)}
        out = []
        for i, (method, _) in enumerate(calls):
            answer = by_id.get(i)
            if answer is None:
                raise ChainError(f"{method}: no answer in the batch")
            out.append(answer)
        return out

    def close(self) -> None:
        """Close this thread's connection (others close with their threads' objects)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------ transport

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            if self._proxy is None:
                conn = cls(self._host, self._port, timeout=self._timeout)
            else:
                conn = cls(self._proxy[0], self._proxy[1], timeout=self._timeout)
                if self._https:
                    conn.set_tunnel(self._host, self._port)
            self._local.conn = conn
        return conn

    def _post(self, payload: Any, *, retry: bool = True,
              transform: Callable[[bytes], bytes] | None = None) -> Any:
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self._count_lock:
            self.round_trips += 1
        for attempt in (0, 1):
            conn = self._connection()
            if not retry and _closed_by_peer(conn):
                self.close()  # the node closed it while idle: a new one, before sending
                conn = self._connection()
            fresh = conn.sock is None
            try:
                conn.request("POST", self._path, body, self._headers)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE as exc:
                self.close()
                if attempt == 0 and not fresh and retry:
                    continue  # the node closed the idle connection: once more on a new one
                raise ChainUnavailableError(
                    f"cannot reach the chain node at {self.url}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if isinstance(exc, socket.timeout | TimeoutError):
                    raise ChainError(f"the chain node at {self.url} did not answer in "
                                     f"{self._timeout:g} s") from exc
                raise ChainUnavailableError(
                    f"cannot reach the chain node at {self.url}: {exc}") from exc
            if resp.will_close:
                self.close()
            if resp.status != 200:
                raise ChainError(f"the chain node answered HTTP {resp.status}: "
                                 f"{data[:200]!r}")
            if transform is not None:
                try:
                    data = transform(data)
                except ValueError:
                    pass  # (not the shape it cuts: decoded whole)
            try:
                return json.loads(data)
            except ValueError as exc:
                raise ChainError(f"the chain node's answer is not JSON: {data[:200]!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept connection was closed by the node: an idle HTTP/1.1 connection the node
    still holds has nothing to read; one it closed reads at end of file at once."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
