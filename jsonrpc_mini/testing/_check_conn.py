"""The check's raw connection: send bytes, read whole JSON values back, or see none come.

What every probe of ``check()`` talks to the server under test through. It
reads newline-delimited JSON and Content-Length framed bodies alike, and turns
what the specification does not allow into ``ProbeFailed``, a silent server into
``NoReply``. Moved out of ``_check``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl as _ssl
import struct
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Address", "Conn", "NoReply", "ProbeFailed", "dumps"]


class NoReply(Exception):
    """The server sent nothing (or the connection ended) within the probe's timeout."""


class ProbeFailed(Exception):
    """A probe saw something the specification does not allow."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where the server under test listens, and the TLS client context to reach it with (or None)."""

    host: str
    port: int
    ssl: _ssl.SSLContext | None = None
    server_hostname: str | None = None


class Conn:
    """A raw TCP (or TLS) connection to the server under test, reading whole JSON values."""

    def __init__(self, address: Address, timeout: float) -> None:
        self.timeout = timeout
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if address.ssl is not None:
            try:  # (the handshake, within the timeout)
                sock = address.ssl.wrap_socket(sock, server_hostname=address.server_hostname or address.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.buf = b""
        self.eof = False

    def send(self, data: bytes, chunks: list[int] | None = None, pause: float = 0.0) -> None:
        """Write ``data``, optionally as pieces of the given sizes with a pause between."""
        if not chunks:
            self.sock.sendall(data)
            return
        pos = 0
        for size in chunks:
            if pos >= len(data):
                break
            self.sock.sendall(data[pos : pos + size])
            pos += size
            if pause:
                time.sleep(pause)
        if pos < len(data):
            self.sock.sendall(data[pos:])

    def send_json(self, value: Any) -> None:
        """Write one compact JSON value and a newline."""
        self.send(dumps(value))

    def _parse(self) -> tuple[bool, Any]:
        buf = self.buf.lstrip(b" \t\r\n")
        if buf[:15].lower().startswith(b"content-length"):
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                return False, None
            length = _content_length(head)
            if len(rest) < length:
                return False, None
            self.buf = rest[length:]
            return True, _loads_body(rest[:length])
        try:
            text = buf.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(buf) - 3:
                raise ProbeFailed(f"the server sent bytes that are not UTF-8: {buf[:80]!r}") from None
            text = buf[: exc.start].decode("utf-8")
        if not text:
            return False, None
        try:
            value, end = json.JSONDecoder().raw_decode(text)
        except RecursionError:
            raise ProbeFailed(f"the server sent JSON nested too deep to read: {text[:80]!r}") from None
        except json.JSONDecodeError:
            if self.eof:
                raise ProbeFailed(f"the server sent invalid JSON: {text[:80]!r}") from None
            return False, None  # incomplete (or invalid: the read's timeout tells)
        self.buf = buf[len(text[:end].encode("utf-8")) :]
        return True, value

    def read(self, timeout: float | None = None) -> Any:
        """The next JSON value from the server; NoReply if none comes within the timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            done, value = self._parse()
            if done:
                return value
            if self.eof:
                raise NoReply("the server closed the connection")
            left = deadline - time.monotonic()
            if left <= 0:
                if self.buf.strip():
                    raise ProbeFailed(f"incomplete or invalid JSON from the server: {self.buf[:80]!r}")
                raise NoReply("no reply within the timeout")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise NoReply(f"the connection failed: {exc}") from None
            if not data:
                self.eof = True
            self.buf += data

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def _content_length(head: bytes) -> int:
    """The Content-Length of a header block (the first such line); ProbeFailed unless a decimal count."""
    for key, _, value in (line.partition(b":") for line in head.split(b"\r\n")):
        if key.strip().lower() == b"content-length":
            if not value.strip().isdigit():
                raise ProbeFailed(f"the server sent a Content-Length that is not a number of bytes: {head[:80]!r}")
            return int(value)
    return 0


def _loads_body(body: bytes) -> Any:
    """The JSON value of a Content-Length body; ProbeFailed unless it is UTF-8 JSON text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProbeFailed(f"the server sent a Content-Length body that is not UTF-8: {body[:80]!r}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ProbeFailed(f"the server sent JSON nested too deep to read: {body[:80]!r}") from None
    except ValueError:  # json.JSONDecodeError
        raise ProbeFailed(f"the server sent a Content-Length body that is not JSON: {body[:80]!r}") from None


def dumps(value: Any) -> bytes:
    """Compact JSON text plus ``\\n``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
