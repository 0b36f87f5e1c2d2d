"""Running the simulator as a real HTTP server: blocking, or in a background thread for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from sigsci_iga.sim.app import create_app
from sigsci_iga.sim.config import SimConfig


def uvicorn_config(app: FastAPI, **options: Any) -> uvicorn.Config:
    """uvicorn settings for the simulator: the real API sends no `Server` header, so neither do we."""
    return uvicorn.Config(app, server_header=False, **options)


def run_server(
    config: SimConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve a fresh simulator until interrupted (on `sock` when given: see `bound_socket`)."""
    server = uvicorn.Server(
        uvicorn_config(create_app(config), host=host, port=port, log_level=log_level)
    )
    # Bound here rather than by uvicorn, so the listener says IPPROTO_TCP (see `bound_socket`).
    server.run(sockets=[sock if sock is not None else bound_socket(host, port)])


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (0: a free port); OSError when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY only on connections whose socket says IPPROTO_TCP, and accepted
    # sockets inherit the listener's protocol number. Left at 0, every response waits on
    # Nagle's algorithm and the peer's delayed ACK (~40 ms on Linux) before it leaves.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextmanager
def serve_in_thread(
    app_or_config: FastAPI | SimConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve on loopback in a daemon thread; yields the base URL (port 0 picks a free port)."""
    app = app_or_config if isinstance(app_or_config, FastAPI) else create_app(app_or_config)
    # Binding here, not in uvicorn, is what lets port 0 report the port it got.
    sock = bound_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn_config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # A stalled `timeout` fault must not hold up shutdown for its full 30 s.
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"sigsci-sim-{bound_port}",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"simulator failed to start on {host}:{bound_port}")
            time.sleep(0.01)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
