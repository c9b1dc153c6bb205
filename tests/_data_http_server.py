"""A real HTTP/1.1 server on 127.0.0.1 for the download tests (Range, drops, hangs, JSON)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Site:
    """What the server serves and how it misbehaves; ``requests`` logs (path, Range header)."""

    files: dict[str, bytes] = field(default_factory=dict)
    json: dict[str, Any] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, then close
    drops_left: dict[str, int] = field(default_factory=dict)  # path -> how many drops
    hang: set[str] = field(default_factory=set)  # paths that never get an answer
    # path -> bytes sent before closing, with no Content-Length (the client cannot tell)
    close_early: dict[str, int] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # path -> Content-Type
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            rng = self.headers.get("Range")
            site.requests.append((self.path, rng))
            if path in site.hang:
                site.stop.wait(30)
                self.close_connection = True
                return
            if path in site.json:
                body = json.dumps(site.json[path]).encode()
                self._send(200, body, {"Content-Type": "application/json"})
                return
            if path not in site.files:
                self._send(404, b"not found", {})
                return
            data = site.files[path]
            if path in site.close_early:
                # HTTP/1.0-style body delimited by closing the connection, cut short
                self.send_response(200)
                self.send_header("Content-Type", site.types.get(path, "application/octet-stream"))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data[: site.close_early[path]])
                self.wfile.flush()
                self.close_connection = True
                return
            start = 0
            m = re.match(r"bytes=(\d+)-$", rng or "")
            if m and not site.ignore_range:
                start = int(m.group(1))
                if start >= len(data):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
            headers = {"Content-Type": site.types.get(path, "application/octet-stream"),
                       "Accept-Ranges": "bytes"}
            status = 200
            if start:
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            if site.drops_left.get(path, 0) > 0 and path in site.drop_after:
                site.drops_left[path] -= 1
                # Promise the whole body, send part of it, then cut the connection.
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: site.drop_after[path]])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(status, body, headers)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve(site: Site) -> Iterator[str]:
    """Serve ``site`` on a free port of 127.0.0.1 in a thread; yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        site.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
