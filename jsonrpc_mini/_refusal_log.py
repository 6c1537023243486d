"""One WARNING for a run of connections refused at ``max_connections``, not one each.

A peer that keeps connecting to a full server would otherwise write a line to the
log per attempt: thousands a second fill a disk. Both servers log the first
refusal at once, then at most one line per ``interval`` carrying how many were
refused since the last one (each refusal is still logged at DEBUG). A count left
when the refusals stop goes out with the server's shutdown.

Both servers' failed ``accept()``s are counted the same way (``AcceptFailures``):
out of file descriptors, it fails at every retry while a connection waits in the
listen queue. So are notifications that could not run (``DroppedNotifications``):
an unknown method or arguments that do not fit get no reply, so the log is the only
place a mistake in one shows, and a peer sending thousands must not fill the disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["DROPPED", "INTERVAL", "AcceptFailures", "DroppedNotifications", "RefusalLog"]

log = logging.getLogger("jsonrpc_mini")

INTERVAL = 10.0  # seconds between two refusal warnings at most


class _OnePerInterval:
    """A WARNING at once, then one per ``interval`` at most: what comes between is counted (thread-safe)."""

    def __init__(self, interval: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = INTERVAL if interval is None else interval
        self._clock = clock
        self._lock = threading.Lock()
        self._quiet_until: float | None = None  # no warning before this time (None: the next one warns)
        self._held = 0  # counted since the last warning

    def _next(self) -> int:
        """One more: -1 if it is only counted (within ``interval`` of a warning), else the count a warning now gives."""
        now = self._clock()
        with self._lock:
            if self._quiet_until is not None and now < self._quiet_until:
                self._held += 1
                return -1
            held, self._held = self._held, 0
            self._quiet_until = now + self._interval
            return held

    def _left(self) -> int:
        """The count since the last warning (taken: the next one warns at once)."""
        with self._lock:
            held, self._held = self._held, 0
            self._quiet_until = None
        return held


class RefusalLog(_OnePerInterval):
    """Counts refusals; logs the first at once, the others at most once per ``interval`` (thread-safe)."""

    def refused(self) -> None:
        """One connection was refused at ``max_connections``."""
        held = self._next()
        if held < 0:
            log.debug("refusing a connection: max_connections reached")
        elif held:
            log.warning("refusing a connection: max_connections reached (%d refused since the last warning)", held + 1)
        else:
            log.warning(
                "refusing a connection: max_connections reached (further refusals: one warning per %g s at most)",
                self._interval,
            )

    def flush(self) -> None:
        """Log the refusals counted since the last warning, if any (the server is shutting down)."""
        held = self._left()
        if held:
            log.warning("%d more connections were refused at max_connections since the last warning", held)


class AcceptFailures(_OnePerInterval):
    """Failed ``accept()``s of one listener: the first logged at once, then one WARNING per ``INTERVAL`` at most."""

    def __init__(self, label: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(None, clock)
        self._label = label  # before each line: which listener (e.g. "TLS port: ")

    def failed(self, exc: OSError) -> None:
        """``accept()`` raised ``exc``."""
        held = self._next()
        if held < 0:
            log.debug("%saccept failed: %s", self._label, exc)
            return
        if held:
            log.warning("%saccept failed: %s (%d failed since the last warning)", self._label, exc, held + 1)
        else:
            log.warning(
                "%saccept failed: %s (further failures: one warning per %g s at most)", self._label, exc, INTERVAL
            )

    def flush(self) -> None:
        """Log the failures counted since the last warning, if any (the listener is closing)."""
        held = self._left()
        if held:
            log.warning("%s%d more accept() failures since the last warning", self._label, held)


class DroppedNotifications(_OnePerInterval):
    """Notifications answered by an error no one receives: one WARNING per ``interval`` at most (thread-safe).

    Each is logged at DEBUG too; an unknown method named ``$/...`` (which LSP peers
    send expecting it to be ignored, ``$/cancelRequest``) only there.
    """

    def dropped(
        self, prefix: Callable[[], str], method: str, code: int | None, message: object, ignorable: bool
    ) -> None:
        """The notification ``method`` failed with that error (``prefix()``: who sent it, as log lines begin)."""
        held = -1 if ignorable else self._next()
        if held < 0 and not log.isEnabledFor(logging.DEBUG):
            return  # (the sender's address is looked up only for a line that is written)
        try:
            shown = str(message)
        except Exception:  # (a handler's RPCError may carry one: the connection must not end on it)
            shown = "<a message that cannot be shown>"
        text = f"{prefix()}notification {method!r} dropped: [{code}] {shown}"
        if held < 0:
            log.debug("%s (a notification gets no reply)", text)
        elif held:
            log.warning("%s (a notification gets no reply; %d dropped since the last warning)", text, held + 1)
        else:
            log.warning(
                "%s (a notification gets no reply; further ones: one warning per %g s at most)", text, self._interval
            )


DROPPED = DroppedNotifications()  # one for the process: a free function (outcome_response) reports to it
