"""What a socket-like object needs for :class:`~jsonrpc_mini.SocketTransport`."""

from __future__ import annotations

from typing import Protocol


class SocketLike(Protocol):
    """The methods :class:`SocketTransport` calls on an object that is not a real socket.

    ``jsonrpc_mini.testing.FakeSocket`` has them all, so a type checker takes
    ``SocketTransport(FakeSocket(...))`` as it runs.
    """

    def recv(self, bufsize: int, /) -> bytes:
        """Read up to ``bufsize`` bytes (``b""`` at end of stream)."""

    def sendall(self, data: bytes, /) -> None:
        """Write all of ``data``."""

    def settimeout(self, value: float | None, /) -> None:
        """Bound the next reads (None: wait for ever)."""

    def shutdown(self, how: int, /) -> None:
        """End one or both directions."""

    def close(self) -> None:
        """Release the object."""
