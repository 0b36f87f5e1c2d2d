"""A small Signal Sciences API on loopback that answers well, or in one chosen hostile way.

It is a separate server rather than a simulator fault, because each misbehaviour here is about
the bytes on the wire (trickled, bombed, endless), which the simulator's framework would buffer.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CORP = "acme"
CALLER = "caller@example.com"
TOKEN = "hostile-test-token-0123456789"
PREFIX = f"/api/v0/corps/{CORP}"
SITES = ("www", "api", "shop")
#: What the gzip bomb decodes to.
BOMB_DECODED = 1024**3


@cache
def gzip_bomb() -> bytes:
    """About 1 MB of gzip that decodes to 1 GiB of spaces (built once per test session)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b" " * (1024 * 1024)
    parts = [packer.compress(b'{"data": [' + block[10:])]
    parts.extend(packer.compress(block) for _ in range(BOMB_DECODED // len(block) - 1))
    parts.append(packer.flush())
    return b"".join(parts)


def user(email: str, role: str = "user", sites: tuple[str, ...] = ("www",)) -> dict[str, Any]:
    return {
        "email": email,
        "name": email.split("@", 1)[0].title(),
        "role": role,
        "status": "active",
        "memberships": {"data": [{"site": {"name": s}, "role": role} for s in sites]},
    }


def good_users() -> list[dict[str, Any]]:
    return [
        user(CALLER, "owner", SITES),
        user("alice@example.com", "admin", ("www", "api")),
        user("bob@example.com", "user", ("shop",)),
    ]


@dataclass
class Hostile:
    """The server's state: what it serves and the way it misbehaves (`mode`)."""

    base_url: str = ""
    mode: str = "normal"
    users: list[dict[str, Any]] = field(default_factory=good_users)
    sites: list[str] = field(default_factory=lambda: list(SITES))
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Seconds each trickled body was being sent before the client hung up.
    trickled: list[float] = field(default_factory=list)
    #: Every request received, as "METHOD /path?query".
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Behave well again, serving the good corp."""
        fresh = Hostile()
        with self.lock:
            self.mode = fresh.mode
            self.users, self.sites, self.events = fresh.users, fresh.sites, fresh.events
            self.requests = []
            self.trickled = []

    def seen(self, method: str) -> list[str]:
        with self.lock:
            return [r for r in self.requests if r.startswith(method + " ")]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the base's name
        return None

    @property
    def hostile(self) -> Hostile:
        return self.server.hostile

    def _record(self) -> None:
        with self.hostile.lock:
            self.hostile.requests.append(f"{self.command} {self.path}")

    def _json(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _raw(self, data: bytes, **headers: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def _write(self) -> None:
        self._record()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PATCH = do_DELETE = do_PUT = _write

    def do_GET(self) -> None:
        self._record()
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _get(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        mode = self.hostile.mode
        if path == PREFIX:
            self._json({"name": CORP, "displayName": "Acme"})
        elif path == PREFIX + "/users":
            self._users(mode)
        elif path.startswith(PREFIX + "/users/"):
            email = unquote(path.removeprefix(PREFIX + "/users/")).lower()
            found = [u for u in self.hostile.users if u["email"].lower() == email]
            if found:
                self._json(found[0])
            else:
                self._json({"message": "user not found"}, 404)
        elif path == PREFIX + "/sites":
            self._sites(mode, int(query.get("page", ["1"])[0]), int(query.get("limit", ["100"])[0]))
        elif path == PREFIX + "/activity" and mode == "endless_events":
            # A full page of events never seen before, and a next link to one more, forever.
            page = int(query.get("page", ["1"])[0])
            events = [
                {
                    "id": f"e-{page}-{i}",
                    "eventType": "userUpdated",
                    "created": "2020-01-01T00:00:00Z",
                }
                for i in range(100)
            ]
            self._json({"data": events, "next": {"uri": f"{PREFIX}/activity?page={page + 1}"}})
        elif path == PREFIX + "/activity":
            self._json({"data": self.hostile.events})
        elif path.endswith("/activity"):
            self._json({"data": []})
        elif path.startswith(PREFIX + "/sites/"):
            name = unquote(path.removeprefix(PREFIX + "/sites/"))
            self._json({"name": name, "displayName": name.title()})
        else:
            self._json({"message": "not found"}, 404)

    def _users(self, mode: str) -> None:
        if mode == "trickle":
            body = json.dumps({"data": self.hostile.users}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            started = time.monotonic()
            try:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1.0)
            finally:
                with self.hostile.lock:
                    self.hostile.trickled.append(time.monotonic() - started)
        elif mode == "gzip_bomb":
            self._raw(gzip_bomb(), Content_Encoding="gzip")
        elif mode == "huge_body":
            # Endless valid-looking JSON, a megabyte at a time, until the client hangs up.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(64 * 1024**3))
            self.end_headers()
            self.wfile.write(b'{"data": [')
            block = b" " * (1024 * 1024)
            for _ in range(64 * 1024):
                self.wfile.write(block)
        elif mode == "deep_users":
            depth = 100_000
            self._raw(b'{"data": [], "x": ' + b"[" * depth + b"]" * depth + b"}")
        else:
            self._json({"data": self.hostile.users})

    def _sites(self, mode: str, page: int, limit: int) -> None:
        hostile = self.hostile
        if mode == "endless_sites":
            # Always a full page of sites never seen before, and never an end.
            names = [f"site-{page}-{i}" for i in range(limit)]
            self._json({"data": [{"name": n} for n in names]})
        elif mode == "stuck_next":
            stamp = time.monotonic_ns()
            names = [f"site-{stamp}-{i}" for i in range(3)]
            self._json(
                {
                    "data": [{"name": n} for n in names],
                    "next": {"uri": f"{PREFIX}/sites?page=2&limit={limit}"},
                }
            )
        elif mode == "repeat_page":
            self._json({"data": [{"name": n} for n in hostile.sites][:limit]})
        elif mode == "deep_sites":
            nested: Any = "x"
            for _ in range(100):
                nested = [nested]
            self._json({"data": [{"name": "www", "extra": nested}]})
        else:
            names = hostile.sites[(page - 1) * limit : page * limit]
            self._json({"data": [{"name": n} for n in names], "totalCount": len(hostile.sites)})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: Hostile

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is what these tests provoke; no traceback for it.
        return None


@contextmanager
def serve(hostile: Hostile) -> Iterator[Hostile]:
    """Serve `hostile` on a free loopback port until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.hostile = hostile
    hostile.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hostile
    finally:
        server.shutdown()
        server.server_close()
