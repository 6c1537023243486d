"""Writing a connection's replies for the asyncio server: the base of ``ServerProtocol``.

Replies finishing in the same loop iteration (or the same pump) go out in one
write; a peer that reads slower than the server answers pauses the taking of new
calls until its buffer drains. ``ServerProtocol`` (``_aio_conn``) keeps reading
and back-pressure. Moved out of ``_aio_conn``.
"""

from __future__ import annotations

from ._aio_calls import CallingProtocol

__all__ = ["WritingProtocol"]


class WritingProtocol(CallingProtocol):
    """The writing part of ``ServerProtocol``, which sets the attributes below."""

    # Slots: the attributes assigned through this type (the rest are ServerProtocol's).
    __slots__ = ("_flush_soon", "_out", "_write_paused")

    _out: list[bytes] | None  # replies waiting to go out in one write
    _pumping: bool
    _flush_soon: bool  # a call_soon(_flush) is pending
    _write_paused: bool

    def pause_writing(self) -> None:
        """The peer reads slower than we answer: stop taking new calls."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The write buffer drained: take calls again."""
        self._write_paused = False
        self.pump()

    def _write(self, data: bytes) -> None:
        # With other calls of this connection still running, replies finishing in the
        # same loop iteration are joined into one write (one system call) by _flush.
        if self._out is not None:
            self._out.append(data)
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._pumping:
            self._out = [data]  # pump() flushes when it is done
        elif self.busy > 1:
            self._out = [data]
            self._flush_soon = True
            self._loop.call_soon(self._flush)
        else:
            transport.write(data)
            if transport.is_closing():
                self._peer_gone()

    def _flush(self) -> None:
        self._flush_soon = False
        out, self._out = self._out, None
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            if transport.is_closing():
                self._peer_gone()

    def _peer_gone(self) -> None:
        """Nothing more can reach the peer (``EndingProtocol``'s).

        Called here when a write fails: asyncio's transport is closing from then on
        (its ``connection_lost`` comes an iteration later), so requests already read
        but not started are dropped now, not after more of them have run (replies of
        calls ending together go out in one write, after the calls it freed room for
        are taken).
        """
        raise NotImplementedError
