"""Servers that fail the way systems fail during an outage, on real sockets on 127.0.0.1.

:class:`FaultServer` listens on a free port and, per connection, does one thing:

- ``hung``: accepts, reads, never answers;
- ``slow``: forwards to ``upstream``, but holds the first answer back ``delay`` seconds;
- ``respond``: reads the request, answers ``response`` (bytes) and closes: a 401, an HTML
  error page from a proxy, garbage, or a body cut short of its Content-Length;
- ``cut``: forwards to ``upstream``, but only the first ``limit`` bytes of the answer, then
  drops both sides: a connection lost half-way;
- ``count``: forwards everything and counts the answer's bytes (to calibrate ``cut``);
- ``drip``: reads the request, then sends ``response`` one byte every ``delay`` seconds, headers included;
- ``flood``: reads the request, sends ``response`` (a status line and headers), then body bytes without end.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class FaultServer:
    def __init__(self, mode: str, *, upstream: tuple[str, int] | None = None, delay: float = 0.0,
                 limit: int = 0, response: bytes = b"") -> None:
        self.mode, self.upstream, self.delay, self.limit, self.response = mode, upstream, delay, limit, response
        self.answered = 0  # bytes sent back on the last connection (count mode)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(2)
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            self._open.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            if self.mode == "hung":
                while not self._stop.is_set() and client.recv(65536):
                    pass
            elif self.mode in ("drip", "flood"):
                client.settimeout(2)
                with contextlib.suppress(OSError):
                    client.recv(65536)
                if self.mode == "drip":
                    for byte in self.response:
                        if self._stop.wait(self.delay):
                            break
                        client.sendall(bytes([byte]))
                else:
                    client.sendall(self.response)
                    block = b"x" * 65536
                    while not self._stop.is_set():
                        client.sendall(block)
                        self.answered += len(block)
            elif self.mode == "respond":
                client.settimeout(2)
                with contextlib.suppress(OSError):
                    client.recv(65536)
                client.sendall(self.response)
                client.close()
            else:
                self._proxy(client)
        except OSError:
            pass

    def _proxy(self, client: socket.socket) -> None:
        assert self.upstream is not None
        upstream = socket.create_connection(self.upstream, timeout=10)
        self._open.append(upstream)
        self.answered = 0
        first = threading.Event()

        def pump(src: socket.socket, dst: socket.socket, answer: bool) -> None:
            try:
                while data := src.recv(65536):
                    if answer:
                        if not first.is_set():
                            first.set()
                            if self.mode == "slow":
                                time.sleep(self.delay)
                        if self.mode == "cut" and self.answered + len(data) > self.limit:
                            dst.sendall(data[: self.limit - self.answered])
                            raise OSError("cut")
                        self.answered += len(data)
                    dst.sendall(data)
            except OSError:
                pass
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
        pump(upstream, client, True)


def http_response(status: str, body: bytes, content_type: str = "application/json", *,
                  declared_length: int | None = None) -> bytes:
    length = len(body) if declared_length is None else declared_length
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n").encode() + body


PROXY_ERROR_PAGE = http_response("502 Bad Gateway", b"<html><head><title>502 Bad Gateway</title></head><body>"
                                 b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
                                 "text/html")
