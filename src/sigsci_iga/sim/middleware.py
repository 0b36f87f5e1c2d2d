"""Pure ASGI layer in front of the API: counting, latency, rate limit and byte-level faults."""

from __future__ import annotations

import itertools
import json
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sigsci_iga.sim.config import API_PREFIX
from sigsci_iga.sim.faults import FaultKind, FaultRule
from sigsci_iga.sim.runtime import SimRuntime

#: Scope key the in-process transport sets, so faults raise instead of stalling or cutting bytes.
INPROCESS_SCOPE_KEY = "sim.inprocess"

RATE_LIMIT_MESSAGE = "Rate limit exceeded"

_JSON = b"application/json; charset=utf-8"
_SECURITY_HEADERS = [
    (b"cache-control", b"private, max-age=0, no-cache, no-store"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"deny"),
    (b"x-xss-protection", b"1; mode=block"),
]
_LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
    b'<body><a href="/login">Found</a>.</body></html>'
)


_CANNED = {
    FaultKind.THROTTLE_429: (429, RATE_LIMIT_MESSAGE),
    FaultKind.THROTTLE_400: (400, RATE_LIMIT_MESSAGE),
    FaultKind.ERROR_500: (500, "Internal Server Error"),
    FaultKind.ERROR_524: (524, "A timeout occurred"),
}


class SimulatedDrop(Exception):
    """Raised in-process where a real server would cut the connection."""


class SimulatedTimeout(Exception):
    """Raised in-process where a real server would stall past the client's timeout."""


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class SimMiddleware:
    """Wraps the FastAPI app; only /api/v0 requests are counted, throttled and faulted."""

    def __init__(self, app: ASGIApp, runtime: SimRuntime) -> None:
        self.app = app
        self.runtime = runtime
        self._request_ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply counting, latency, the rate limit and any fault, then call the app."""
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        method: str = scope["method"]
        path: str = scope["path"]
        route = runtime.route_key(method, path, API_PREFIX)
        runtime.calls.record(route)
        send = self._decorated(send)

        if runtime.config.latency_ms > 0:
            await anyio.sleep(runtime.config.latency_ms / 1000)
        assert runtime.limiter is not None  # set in SimRuntime.__post_init__
        if not runtime.limiter.allow():
            status = runtime.config.rate_limit_status
            await _send_json(send, status, {"message": RATE_LIMIT_MESSAGE})
            return

        rules = runtime.faults.pick(method, path, route)
        for rule in rules:
            if rule.kind is FaultKind.LATENCY and rule.latency_ms > 0:
                await anyio.sleep(rule.latency_ms / 1000)
        terminal = next((r for r in rules if r.kind is not FaultKind.LATENCY), None)
        if terminal is None:
            await self.app(scope, receive, send)
            return
        await self._fault(terminal, scope, receive, send)

    def _decorated(self, send: Send) -> Send:
        request_id = f"sim-{next(self._request_ids):08d}".encode()

        async def decorated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_SECURITY_HEADERS)
                headers.append((b"x-request-id", request_id))
                message = {**message, "headers": headers}
            await send(message)

        return decorated

    async def _fault(self, rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
        kind = rule.kind
        inprocess = bool(scope.get(INPROCESS_SCOPE_KEY))
        if kind in _CANNED:
            status, message = _CANNED[kind]
            await _send_json(send, status, {"message": message})
        elif kind is FaultKind.LOGIN_REDIRECT:
            await send(
                {
                    "type": "http.response.start",
                    "status": 302,
                    "headers": [
                        (b"location", b"/login"),
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"content-length", str(len(_LOGIN_PAGE)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _LOGIN_PAGE})
        elif kind is FaultKind.TIMEOUT:
            if inprocess:
                raise SimulatedTimeout(scope["path"])
            replay = await self._stall(receive)
            if replay is not None:
                await self.app(scope, replay, send)
        elif kind is FaultKind.EMPTY_USERS:
            status, headers, body = await self._capture(scope, receive)
            await _send_body(send, status, headers, b'{"data":[]}' if status == 200 else body)
        elif kind is FaultKind.TRUNCATE:
            status, headers, body = await self._capture(scope, receive)
            await _send_body(send, status, headers, body[: len(body) // 2])
        else:  # FaultKind.DROP: the app runs (a write lands), then the reply is cut mid-body.
            status, headers, body = await self._capture(scope, receive)
            if inprocess:
                raise SimulatedDrop(scope["path"])
            promised = len(body) + 1024
            kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            kept.append((b"content-length", str(promised).encode()))
            await send({"type": "http.response.start", "status": status, "headers": kept})
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            # Returning with the body incomplete makes uvicorn close the connection.

    async def _capture(self, scope: Scope, receive: Receive) -> tuple[int, list[Any], bytes]:
        captured: dict[str, Any] = {"status": 500, "headers": []}
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        return int(captured["status"]), list(captured["headers"]), bytes(body)

    async def _stall(self, receive: Receive) -> Receive | None:
        """Wait out the timeout; None if the client hung up, else a receive that replays."""
        buffered: list[Message] = []
        with anyio.move_on_after(self.runtime.config.timeout_fault_seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                buffered.append(message)

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        return replay


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await _send_body(send, status, [(b"content-type", _JSON)], _json_bytes(payload))


async def _send_body(send: Send, status: int, headers: list[Any], body: bytes) -> None:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    if status != 204:
        kept.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body})
