"""An in-process httpx transport for the simulator that fails the way a real connection would."""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from sigsci_iga.sim.middleware import INPROCESS_SCOPE_KEY, SimulatedDrop, SimulatedTimeout


class _MarkInProcess:
    """Tags the scope so the fault layer raises instead of stalling or cutting bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, INPROCESS_SCOPE_KEY: True}, receive, send)


class InProcessTransport(httpx.AsyncBaseTransport):
    """httpx.ASGITransport plus: drop → RemoteProtocolError, timeout → ReadTimeout, crash → 500."""

    def __init__(self, app: ASGIApp) -> None:
        self._inner = httpx.ASGITransport(app=_MarkInProcess(app), raise_app_exceptions=True)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request through the app."""
        try:
            return await self._inner.handle_async_request(request)
        except SimulatedDrop:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body (simulated drop)",
                request=request,
            ) from None
        except SimulatedTimeout:
            raise httpx.ReadTimeout("simulated read timeout", request=request) from None
        except Exception:  # noqa: BLE001  # a real server answers 500 rather than leak its traceback
            return httpx.Response(
                500,
                headers={"content-type": "application/json; charset=utf-8"},
                content=b'{"message":"Internal Server Error"}',
                request=request,
            )

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def inprocess_transport(app: ASGIApp) -> httpx.AsyncBaseTransport:
    """A transport that sends httpx requests straight into the simulator app."""
    return InProcessTransport(app)
