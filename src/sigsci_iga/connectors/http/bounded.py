"""Sending one request with a bound on its whole time and on the size of its decoded body.

httpx's timeouts bound each read, so a server that trickles a byte a second would hold a call
for as long as it likes; and it decodes a gzip body whole, so a small body could fill memory.
Here the whole exchange (connect, headers, body) has one deadline, and the body is counted as
it is decoded, chunk by chunk, so an oversized one is refused as soon as it passes the cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import httpx

from sigsci_iga.errors import TransientError, UnexpectedResponseError

#: 256 MiB: a 50,000-user corp's users list with memberships is about 100-200 MB of JSON.
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024
#: Headers that described the body as sent; the body kept here is already decoded.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class BodySink(Protocol):
    """Takes a body as it is decoded, instead of it being kept (a users list of 690 MB)."""

    def feed(self, chunk: bytes) -> None:
        """The next decoded bytes; raising stops the read."""

    def end(self) -> None:
        """The body is complete."""


async def send_bounded(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    deadline: float,
    max_body_bytes: int,
    shown: str,
    sink_for: Callable[[httpx.Response], BodySink | None] | None = None,
) -> httpx.Response:
    """Send `request` and read its body whole, within `deadline` seconds and `max_body_bytes`.

    A missed deadline is a `TransientError` (a slow server may recover), an oversized or
    undecodable body an `UnexpectedResponseError`; transport errors propagate as httpx raises
    them. The response returned holds the decoded body and no content-encoding header.

    `sink_for` may take the body of a response (given its status and headers) as it arrives:
    the cap then bounds what is streamed through the sink, the time the sink takes is not
    counted against `deadline`, and the response returned is empty.
    """
    method = request.method
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(deadline) as limit:
            response = await http.send(request, stream=True)
            sink = sink_for(response) if sink_for is not None else None
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise UnexpectedResponseError(
                            method=method,
                            path=shown,
                            status=response.status_code,
                            message=f"body larger than {max_body_bytes} bytes once decoded "
                            "(SIGSCI_IGA_MAX_BODY_BYTES); refused",
                        )
                    if sink is None:
                        chunks.append(chunk)
                        continue
                    # The deadline bounds the server's time, not ours: what the sink spends
                    # on a chunk (decoding, diffing, spooling) moves the deadline as far.
                    began = loop.time()
                    sink.feed(chunk)
                    when = limit.when()
                    if when is not None:
                        limit.reschedule(when + loop.time() - began)
                if sink is not None:
                    began = loop.time()
                    sink.end()
                    when = limit.when()
                    if when is not None:
                        limit.reschedule(when + loop.time() - began)
            except httpx.DecodingError:
                raise UnexpectedResponseError(
                    method=method,
                    path=shown,
                    status=response.status_code,
                    message="body cannot be decoded as its content-encoding says",
                ) from None
            finally:
                await response.aclose()
    except TimeoutError:
        raise TransientError(
            method=method,
            path=shown,
            status=None,
            message=f"no complete answer within {deadline:g} s (SIGSCI_IGA_TIMEOUT)",
        ) from None
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=request,
        extensions=response.extensions,
    )
