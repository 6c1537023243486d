"""One served connection: Leader/Followers threads over the sans-IO core.

One thread at a time reads. When it has a request it promotes an idle thread (or
starts one, up to ``max_concurrent_calls``) to read next, then runs the call itself
and writes the reply. A slow call therefore never delays a fast one sent after it,
and a fast sequential client costs no hand-off on its reply path.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._codec import ErrorObject, ErrorResponse, Notification, Request, Response
from ._dispatch import outcome_response
from ._errors import RPCError
from ._protocol import Batch, Call, Closed, Reply, ServerConnection, ServerEvent
from ._transport import RECV_SIZE, Transport

if TYPE_CHECKING:
    from ._server import RPCServer

__all__ = ["Session"]

log = logging.getLogger("jsonrpc_mini")

_POLL = 0.5
SHUTTING_DOWN = -32000

_local = threading.local()


class Session:
    """A connection being served; created by the server for each client."""

    def __init__(self, server: RPCServer, transport: Transport, on_done: Callable[[Session], None], name: str) -> None:
        self._server = server
        self._opts = server.options
        self._transport = transport
        self._on_done = on_done
        self._name = name
        self._proto = ServerConnection(
            framing=self._opts.framing,
            codec=server.codec,
            max_message_size=self._opts.max_message_size,
            max_depth=self._opts.max_depth,
        )
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._reading = False
        self._busy = 0
        self._threads = 0
        self._idle = 0
        self._input_done = False
        self._closing = False
        self._draining = False
        self._close_when_idle = False
        self._all_threads: list[threading.Thread] = []
        self._message_started: float | None = None
        # idle_timeout counts from the last message or call end, not the last byte:
        # trickled whitespace or skipped garbage must not keep a connection open.
        self._idle_since = time.monotonic()
        self.finished = threading.Event()

    # -- lifecycle -----------------------------------------------------------

    def start(self, setup: Callable[[], Transport | None] | None = None) -> None:
        """Start serving in a new thread; ``setup`` (e.g. a TLS handshake) runs there first."""
        with self._cond:
            self._spawn(setup)

    def _spawn(self, setup: Callable[[], Transport | None] | None = None) -> None:
        self._threads += 1
        thread = threading.Thread(target=self._worker, args=(setup,), name=f"{self._name}-{self._threads}", daemon=True)
        self._all_threads = [t for t in self._all_threads if t.is_alive()]
        self._all_threads.append(thread)
        thread.start()

    @property
    def busy(self) -> int:
        """Calls running now on this connection."""
        return self._busy

    def drain(self) -> None:
        """Answer new requests with 'server is shutting down' from now on."""
        self._draining = True

    def close(self) -> None:
        """Stop reading, close the transport, wake every thread; idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._transport.close()

    def close_when_idle(self) -> None:
        """Stop reading and close once no call is running (replies still go out)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            if self._busy:
                self._close_when_idle = True
                return
        self._transport.close()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every thread to end; True if they did."""
        return self.finished.wait(timeout)

    # -- the worker ----------------------------------------------------------

    def _worker(self, setup: Callable[[], Transport | None] | None) -> None:
        _local.session = self
        try:
            if setup is not None:
                transport = setup()
                if transport is None:
                    return
                self._transport = transport
            self._serve()
        except Exception:  # pragma: no cover - a bug in the driver; keep the server alive
            log.exception("%s: connection handler failed", self._name)
        finally:
            with self._cond:
                self._threads -= 1
                last = self._threads == 0
                self._input_done = True
                self._cond.notify_all()
            if last:
                self._transport.close()
                self.finished.set()
                self._on_done(self)

    def _serve(self) -> None:
        opts = self._opts
        while True:
            with self._cond:
                while (self._reading or self._busy >= opts.max_concurrent_calls) and not (
                    self._closing or self._input_done
                ):
                    self._idle += 1
                    self._cond.wait(_POLL)
                    self._idle -= 1
                if self._closing or self._input_done:
                    return
                self._reading = True
            event = self._read_event()
            with self._cond:
                self._reading = False
                if event is None:
                    self._input_done = True
                    self._cond.notify_all()
                    return
                self._busy += 1
                if self._idle:
                    self._cond.notify()
                elif self._threads <= opts.max_concurrent_calls:
                    self._spawn()
            try:
                self._handle(event)
            finally:
                self._idle_since = time.monotonic()
                with self._cond:
                    self._busy -= 1
                    self._cond.notify()
                    close_now = self._close_when_idle and not self._busy
                if close_now:
                    self._transport.close()

    def _read_event(self) -> Call | Batch | None:
        proto = self._proto
        while True:
            event: ServerEvent | None = proto.next_event()
            if event is not None:
                self._idle_since = time.monotonic()
                if isinstance(event, Reply):
                    if not self._send(event.data) or event.close:
                        return None
                    continue
                if isinstance(event, Closed):
                    return None
                self._message_started = None
                return event
            if self._closing:
                return None
            try:
                data = self._transport.recv(RECV_SIZE, self._recv_timeout())
            except TimeoutError:
                if self._timed_out():
                    return None
                continue
            except OSError as exc:
                log.debug("%s: read failed: %s", self._name, exc)
                return None
            proto.receive_data(data)

    def _recv_timeout(self) -> float | None:
        opts = self._opts
        if self._proto.in_message:
            if self._message_started is None:
                self._message_started = time.monotonic()
            if opts.read_timeout is None:
                return None
            return max(0.0, self._message_started + opts.read_timeout - time.monotonic())
        self._message_started = None
        if opts.idle_timeout is None:
            return None
        return max(0.0, self._idle_since + opts.idle_timeout - time.monotonic())

    def _timed_out(self) -> bool:
        if self._proto.in_message:
            log.info("%s: message not completed within read_timeout; closing", self._name)
            return True
        if self._busy:
            self._idle_since = time.monotonic()  # calls still running: the connection is not idle
            return False
        if self._recv_timeout():
            return False  # a call ended meanwhile: its end restarted the idle time
        log.info("%s: idle for idle_timeout; closing", self._name)
        return True

    # -- running calls -------------------------------------------------------

    def _handle(self, event: Call | Batch) -> None:
        proto = self._proto
        if isinstance(event, Call):
            reply = self._run(event.message)
            if reply is not None:
                self._send(proto.encode(reply))
            return
        replies = [item if isinstance(item, ErrorResponse) else self._run(item) for item in event.items]
        data = proto.encode_batch(replies)
        if data is not None:
            self._send(data)

    def _run(self, message: Request | Notification) -> Response | ErrorResponse | None:
        debug = self._opts.debug
        if self._draining and isinstance(message, Request):
            return ErrorResponse(message.id, ErrorObject(SHUTTING_DOWN, "Server error: the server is shutting down"))
        try:
            prepared = self._server.prepare(message)
        except RPCError as exc:
            return outcome_response(message, exc=exc, debug=debug)
        try:
            result: Any = prepared.run()
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
        except Exception as exc:
            return outcome_response(message, exc=exc, debug=debug)
        return outcome_response(message, result, debug=debug)

    def _send(self, data: bytes) -> bool:
        try:
            with self._write_lock:
                self._transport.send(data)
            return True
        except OSError as exc:
            log.debug("%s: write failed: %s", self._name, exc)
            with self._cond:
                self._input_done = True
                self._cond.notify_all()
            self._transport.close()
            return False


async def _await(awaitable: Any) -> Any:
    return await awaitable


def current_session() -> Session | None:
    """The session whose handler is running in this thread, if any."""
    return getattr(_local, "session", None)
