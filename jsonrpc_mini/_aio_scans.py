"""A large value scanned in slices over loop iterations: the part of ``ServerProtocol`` that does it.

The core scans a value that is not one compact line at most ``SCAN_STEPS`` steps
(``_aio_conn``) at a time; the rest is scanned in later loop iterations, reading
paused meanwhile, so one peer's large, deeply nested value does not hold the loop
(and with it every other connection) for the seconds scanning it costs.
``ServerProtocol`` (``_aio_conn``) keeps reading and the pump that starts a scan.
"""

from __future__ import annotations

from ._aio_ending import EndingProtocol

__all__ = ["ScanningProtocol"]


class ScanningProtocol(EndingProtocol):
    """Scanning in slices, for ``ServerProtocol``, which sets the attributes below."""

    # Slots: the attributes assigned through this type (the rest are ServerProtocol's).
    __slots__ = ("_scan_from", "_scan_soon", "_started")

    _scan_soon: bool  # a call_soon(_scan_more) is pending

    def _scan_later(self) -> None:
        """The core stopped scanning after SCAN_STEPS: go on in a later loop iteration.

        Reading stays paused until the scan catches up (the bytes waiting are
        bounded by max_message_size and one read). The time the scan takes does
        not count against read_timeout (the peer is not waited for meanwhile); the
        time before and after it still does (see _scan_more).
        """
        if self._scan_from is None:
            self._scan_from = self._loop.time()
        transport = self._transport
        if not self._read_paused and transport is not None and not transport.is_closing():
            self._read_paused = True
            transport.pause_reading()
        if not self._scan_soon:
            self._scan_soon = True
            self._loop.call_soon(self._scan_more)

    def _scan_more(self) -> None:
        self._scan_soon = False
        self.pump()
        scan_from = self._scan_from
        if not self._scan_soon and scan_from is not None:  # caught up (or stopped: calls at their limit, closed)
            self._scan_from = None
            started = self._started
            # Only a message begun before the scan has the scan's time taken off: one
            # whose first read began the scan got its start at the scan's end (pump).
            if started is not None and started <= scan_from:
                self._started = started + self._loop.time() - scan_from
            if not (self._input_done or self._gone):
                self._arm()
