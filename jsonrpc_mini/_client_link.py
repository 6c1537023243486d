"""The sync client's connection, ``_Link``: registering and sending requests.

A request is registered as pending, then sent. A small request on an idle
connection takes the reading turn in the same lock round (see ``_Link.request``);
one made while another thread sends is left in the outbox for that thread to
write (see ``_Link.send``). Reading replies is the base class's part
(``_client_reader._ReplyReader``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from ._client_reader import _ReplyReader, _Waiter
from ._codec import ErrorResponse, Id, Params, Response
from ._errors import ConnectionLost, RPCTimeout
from ._protocol import ClientConnection, Closed, Violation
from ._transport import Transport, feed_ready

# A request up to this size takes the reader's turn as it is registered (see _Link.request),
# or is left for the thread that claimed the outbox to write (see _Link.send).
_EARLY_TURN = 16 * 1024


class _Link(_ReplyReader):
    """One connection, shared by an RPCClient and its ``with_timeout`` views."""

    def __init__(self, transport: Transport, proto: ClientConnection) -> None:
        self.transport = transport
        self.proto = proto
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.pending: dict[Id, _Waiter] = {}
        self.reading = False
        # Small requests left by callers while another thread has claimed the outbox
        # (``sending``: it holds the send lock or waits for it, and writes them after
        # its own request before it gives the claim up; see send). Both under ``lock``.
        self.outbox: list[tuple[_Waiter, bytes]] = []
        self.sending = False
        self.lost: str | None = None
        # The last error with id null that no call could take (e.g. "message too
        # large" answering a notification), until the server sends anything else:
        # told with ConnectionLost if one follows.
        self.said: str | None = None

    # -- sending ---------------------------------------------------------------

    def start(self, waiters: Sequence[_Waiter], data: bytes, deadline: float | None, what: str) -> None:
        """Register ``waiters`` (their replies may come as soon as ``data`` is out) and send ``data``."""
        with self.lock:
            if self.lost is not None:
                raise ConnectionLost(self.lost)
            for waiter in waiters:
                self.pending[waiter.id] = waiter
        try:
            self.send(data, deadline, what)
        except BaseException:
            with self.lock:
                for waiter in waiters:
                    self.pending.pop(waiter.id, None)
            raise

    def request(self, method: str, params: Params, timeout: float | None) -> Any:
        """Call ``method`` and wait for its result (RPCTimeout after ``timeout`` seconds).

        Speed: ``start`` then ``wait`` cost two lock rounds. A caller that is alone
        (no call pending, nobody reading, nobody sending: it takes the send lock in
        the same round) with a small request takes the reader's turn in the round
        that registers it. Only then: a caller holding the turn while its send
        waits (for the send lock, or for room in a full socket buffer) would keep
        everyone else's replies unread, and a server blocked writing them would
        never read that send (a hang, a7a2f56). A small send on an idle connection
        returns at once.

        A small request made while another thread has claimed the outbox is left
        there for that thread to write (see send): this caller sends nothing and
        goes straight to waiting for its reply, where it may take the reading turn.
        """
        proto = self.proto
        id_ = proto.next_id()
        data = proto.encode_request(method, params, id_)
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = _Waiter(id_, method)
        small = len(data) <= _EARLY_TURN
        with self.lock:
            if self.lost is not None:
                raise ConnectionLost(self.lost)
            queued = small and self.sending
            if queued:
                self.outbox.append((waiter, data))
                locked = lead = drain = False
            else:
                locked = self.send_lock.acquire(blocking=False)
                lead = locked and small and not self.reading and not self.pending
                # Claim the outbox, unless reading; a caller still to wait for the send
                # lock claims it only if it may wait for ever (no deadline): it could
                # not give up waiting while others' requests depend on it.
                drain = not lead and not self.sending and (locked or deadline is None)
                if lead:
                    self.reading = True
                elif drain:
                    self.sending = True
            self.pending[waiter.id] = waiter
        if not queued:
            try:
                self.send(data, deadline, waiter.method, locked=locked, reader=lead, drain=drain)
            except BaseException as exc:
                with self.lock:
                    self.pending.pop(waiter.id, None)
                if lead:
                    self._release_reader()
                if isinstance(exc, ConnectionLost) and waiter.error is not None:
                    # The server answered this call before it closed (see _read_last_words).
                    raise waiter.error from exc
                raise
            if lead:
                self._lead(waiter, deadline)
                if waiter.done:
                    return waiter.outcome()
        self.wait(waiter, deadline)
        return waiter.outcome()

    def send(
        self,
        data: bytes,
        deadline: float | None = None,
        method: str = "",
        *,
        locked: bool = False,
        reader: bool = False,
        drain: bool = False,
    ) -> None:
        """Send ``data`` whole; RPCTimeout if that cannot happen by ``deadline``.

        A send cut short by the deadline may have put part of a message on the
        wire, so the connection is closed (other pending calls get ConnectionLost).
        ``locked``: the caller holds the send lock already (it is released here);
        ``reader``: it holds the reader's turn; ``drain``: it has claimed the outbox
        (see request) and writes what other callers leave there meanwhile, after
        ``data`` and before the send lock is released.

        Speed: with threads sharing the client, callers waited for the send lock
        while its holder's send ran (a send releases the GIL): a sleep and a
        wake-up per call, and one system call per request. A caller that finds the
        outbox claimed leaves its small request there instead; the claimant writes
        all of them in one send. It never holds the reading turn (so no reply waits
        for it: see above); if it is interrupted before they are written, the
        connection is closed (see _fail_outbox).
        """
        try:
            if not locked:
                if deadline is None:
                    self.send_lock.acquire()
                elif not self.send_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise RPCTimeout(f"{method}: could not send within the timeout (another send is stuck)")
        except BaseException:
            if drain:  # (only a caller without a deadline claims before it has the lock)
                self._fail_outbox()
            raise
        drained = False
        try:
            self._write(data, deadline, method, reader)
            if drain:
                self._drain(deadline)
            drained = True
        finally:
            if drain and not drained:
                self._fail_outbox()
            self.send_lock.release()

    def _drain(self, deadline: float | None) -> None:
        """Write what callers left in the outbox until it stays empty, then give up the claim (send lock held)."""
        while True:
            with self.lock:
                outbox = self.outbox
                if not outbox or self.lost is not None:
                    self.sending = False
                    return
                self.outbox = []
            data = outbox[0][1] if len(outbox) == 1 else b"".join([data for _, data in outbox])
            # A failed write closed the connection and failed every pending call (fail_all):
            # the loop ends at its next look. The callers whose requests these were wait.
            with contextlib.suppress(RPCTimeout, ConnectionLost):
                self._write(data, deadline, "", False)

    def _fail_outbox(self) -> None:
        """The claimant stops without writing the outbox: it was interrupted, or the connection failed.

        Requests left there are never sent, and one of their callers may be reading
        (nobody else was), blocked in a read that only the connection's end
        interrupts: so the connection is closed and every pending call fails
        (ConnectionLost), rather than that caller waiting for ever. (An interrupted
        send may also have put part of a message on the wire.)
        """
        with self.lock:
            self.sending = False
            unsent = bool(self.outbox)
            self.outbox = []
        if unsent:
            self.fail_all("a thread sending requests for others was interrupted; the connection is closed")

    def _write(self, data: bytes, deadline: float | None, method: str, reader: bool) -> None:
        """Write ``data``, the send lock held; if that fails, the connection is closed (fail_all)."""
        try:
            send_within = None if deadline is None else getattr(self.transport, "send_within", None)
            if send_within is not None and deadline is not None:
                send_within(data, deadline - time.monotonic())
            else:
                self.transport.send(data)
        except TimeoutError as exc:
            self.fail_all(f"the server took no data for too long: {exc}")
            raise RPCTimeout(f"{method}: could not send within the timeout; the connection is closed") from exc
        except OSError as exc:
            self._read_last_words(reader)
            self.fail_all(f"connection lost while sending: {exc}")
            raise ConnectionLost(self.lost or "connection lost") from exc
        except BaseException:
            # Interrupted inside the write (e.g. Ctrl-C): part of the request may be on
            # the wire, and the server would read whatever is sent next as its rest.
            self.fail_all("a send was interrupted; part of a request may be on the wire, so the connection is closed")
            raise

    def _read_last_words(self, held: bool) -> None:
        """After a failed send, take in what the server sent before closing, without waiting.

        A server that refuses a message (too large, too many connections) answers
        and closes while the request is still going out, so the send fails with a
        broken pipe; the answer is usually here already and says why. Skipped
        when another thread holds the reader's turn (it reads the answer).
        """
        if not held:
            with self.lock:
                if self.reading:
                    return
                self.reading = True
        try:
            proto = self.proto
            feed_ready(self.transport, proto.receive_data, proto.max_message_size, alone=True)
            events: list[Response | ErrorResponse | Violation | Closed] = []
            while (event := proto.next_event()) is not None:
                if not isinstance(event, Closed):  # the failed send is the reason given
                    events.append(event)
            self._deliver_all(events)
        finally:
            if not held:
                self._release_reader()
