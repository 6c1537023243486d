"""Idle and read timeouts of a connection served by the asyncio server.

One timer per connection, never reset per message: when it fires it checks the
times kept by the connection (``_last``: the last message or call end;
``_started``: when the message being received began) and either closes the
connection or sleeps until the next deadline. A connection whose reading the
server holds paused at ``max_total_calls`` is not idle (its idle time starts
again when the server lets it read); one whose peer does not read its replies is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ._aio_linger import LINGER
from ._peer_names import aio_label

if TYPE_CHECKING:
    from ._aio_server import RPCServer
    from ._server import ServerOptions

__all__ = ["TimedProtocol"]

log = logging.getLogger("jsonrpc_mini")


class TimedProtocol(asyncio.BufferedProtocol, asyncio.Protocol):
    """The timeout part of ``ServerProtocol``: it sets the attributes below and ``close()``.

    Both kinds of protocol: asyncio's socket transports read into its buffer
    (``get_buffer``), other transports (the test kit's) call ``data_received``.
    """

    __slots__ = ("_timer",)

    _opts: ServerOptions
    _loop: asyncio.AbstractEventLoop
    _transport: asyncio.Transport | None
    under: asyncio.Transport | None  # the plain transport under TLS (None: plain, or not known)
    _timer: asyncio.TimerHandle | None
    _last: float  # when the last message arrived or the last call ended
    _started: float | None  # when the message being received began (None: none is)
    _scan_from: float | None  # when the server began scanning what it holds in slices (None: it is not)
    _input_done: bool
    _write_paused: bool
    _srv: RPCServer
    busy: int

    def peer_label(self) -> str:
        """This connection in a log line: ``connection from 127.0.0.1:5555`` (a failing call's too)."""
        return aio_label(self._transport)

    def close(self, linger: float = LINGER) -> None:
        """Close the transport (buffered replies are still flushed; TLS: see ``_aio_linger``)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection now, with whatever still waits to be sent."""
        raise NotImplementedError

    def _arm(self) -> None:
        """Schedule the next timeout check (one timer per connection, never reset per message)."""
        opts, now = self._opts, self._loop.time()
        deadline: float | None = None
        if self._started is not None and opts.read_timeout is not None:
            deadline = self._started + opts.read_timeout
        elif opts.idle_timeout is not None:
            deadline = self._last + opts.idle_timeout
            if deadline <= now:
                deadline = now + opts.idle_timeout
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer.when() <= deadline:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._check)

    def _check(self) -> None:
        # Also once the connection is closed (the peer half-closed, or a protocol error
        # or a timeout closed it): the transport stays open while its replies wait to
        # go out, so a peer that reads nothing would keep it, its max_connections slot
        # and the replies for ever; idle_timeout ends that wait too.
        self._timer = None
        if self._scan_from is not None:
            return  # the server is busy with what it received, not waiting for the peer: re-armed after
        opts, now = self._opts, self._loop.time()
        if self._started is not None and opts.read_timeout is not None and now >= self._started + opts.read_timeout:
            log.info("%s: message not completed within read_timeout; closing", aio_label(self._transport))
            self._give_up()
            return
        # Not idle either while the server holds reading paused (max_total_calls): a
        # request may be waiting for a free slot. A peer that does not read its replies
        # (writing paused) still ends by idle_timeout.
        idle = self.busy == 0 and self._started is None and (self._write_paused or self not in self._srv._blocked)
        if idle and opts.idle_timeout is not None and now >= self._last + opts.idle_timeout:
            if self._input_done:
                log.info(
                    "%s: replies of a closed connection not taken within idle_timeout; dropped",
                    aio_label(self._transport),
                )
                self.abort()
            else:
                log.info("%s: idle for idle_timeout; closing", aio_label(self._transport))
                self._give_up()
            return
        self._arm()

    def _give_up(self) -> None:
        # close() waits for buffered replies to be sent; a peer that stops reading
        # would keep the connection for ever, so what it did not take is dropped.
        # Over TLS the bytes may wait in the TLS layer or in the plain transport under it.
        self.close()
        transport, under = self._transport, self.under
        if transport is not None and (
            transport.get_write_buffer_size() or (under is not None and under.get_write_buffer_size())
        ):
            self.abort()
