"""The pure decisions of seeded fault plans (no I/O, no clock, no threads).

:class:`FaultPlan` (defined in ``_fault_plan``, re-exported here) says *what* goes
wrong; :class:`LinkState` decides, for each piece of bytes about to cross the link,
how many bytes move now, how long to hold them back and which fault (if any)
happens right after. Drivers do the I/O: the
blocking :class:`~jsonrpc_mini.testing.FaultyTransport` (used by ``loopback`` and
the TCP proxy of ``LoopbackServer``), and any asyncio driver can call the same
``LinkState.next_step``/``commit`` pair with ``await asyncio.sleep(step.delay)``.

Determinism: every random choice comes from ``random.Random`` seeded with the plan's
seed, the connection number and the direction, and cut points are positions in each
direction's byte stream. The same seed therefore gives the same cut points and the
same failure points, whatever the timing (a read may additionally come up short
when the peer has not written more yet, exactly as on a real socket).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from ._fault_plan import DirectionFaults, DirectionName, Fault, FaultPlan

__all__ = ["DirectionFaults", "Fault", "FaultPlan", "LinkState", "Step"]

Bytes = bytes | bytearray | memoryview

# A JSON-RPC message is at least 30 bytes ('{"jsonrpc":"2.0","method":"a"}'), so a
# cut 1..24 bytes into a frame always lands inside it.
_MAX_FRAME_CUT = 24


@dataclass(frozen=True, slots=True)
class Step:
    """One decision: hold back ``delay`` seconds, move ``size`` bytes, then ``fault``."""

    size: int
    delay: float = 0.0
    fault: Fault | None = None
    reason: str = ""


class _FrameCounter:
    """Counts frames in a byte stream: newline-terminated values or Content-Length messages."""

    __slots__ = ("_body_left", "_header", "done", "into", "mode")

    def __init__(self) -> None:
        self.mode: Literal["unknown", "newline", "content-length"] = "unknown"
        self.done = 0  # frames completed
        self.into = 0  # bytes of the current frame seen so far
        self._header = b""
        self._body_left: int | None = None

    def until_boundary(self, view: bytes) -> int | None:
        """Bytes of ``view`` up to and including the end of the current frame, if visible."""
        mode = self.mode
        if mode == "unknown" and view:
            mode = "content-length" if view[:1] in (b"C", b"c") else "newline"
        if mode == "newline":
            end = view.find(b"\n")
            return None if end < 0 else end + 1
        if self._body_left is not None:
            return self._body_left if self._body_left <= len(view) else None
        joined = self._header + view
        end = joined.find(b"\r\n\r\n")
        if end < 0:
            return None
        total = end + 4 + _content_length(joined[:end]) - len(self._header)
        return total if total <= len(view) else None

    def feed(self, data: bytes) -> None:
        """Account for ``data`` having crossed the link."""
        while data:
            size = self.until_boundary(data)
            if self.mode == "unknown":
                self.mode = "content-length" if data[:1] in (b"C", b"c") else "newline"
            if size is None:
                self._partial(data)
                return
            self.done += 1
            self.into = 0
            self._header = b""
            self._body_left = None
            data = data[size:]

    def _partial(self, data: bytes) -> None:
        self.into += len(data)
        if self.mode != "content-length":
            return
        if self._body_left is not None:
            self._body_left -= len(data)
            return
        joined = self._header + data
        end = joined.find(b"\r\n\r\n")
        if end < 0:
            self._header = joined[-4096:]
            return
        self._body_left = _content_length(joined[:end]) - (len(joined) - end - 4)
        self._header = b""


def _content_length(header: bytes) -> int:
    for line in header.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0


def _awkward_cut(view: Bytes, limit: int) -> int | None:
    """The first awkward cut position in ``view[1:limit]``, if any."""
    for pos in range(1, min(limit, len(view))):
        byte, before = view[pos], view[pos - 1]
        if (byte & 0xC0) == 0x80 or before == 0x5C or (before == 0x0D and byte == 0x0A):
            return pos
    return None


class _Shared:
    """State both directions of one link share."""

    __slots__ = ("broken", "total")

    def __init__(self) -> None:
        self.total = 0
        self.broken: tuple[Fault, str] | None = None


class DirectionState:
    """The pure state machine of one direction: decides steps, then learns what moved."""

    def __init__(self, plan: FaultPlan, name: DirectionName, connection: int, shared: _Shared) -> None:
        self.plan = plan
        self.name = name
        self.faults = plan.direction(name)
        self._shared = shared
        self._rng = random.Random(f"{plan.seed}/{connection}/{name}/cuts")
        self._delay_rng = random.Random(f"{plan.seed}/{connection}/{name}/delays")
        self._tag = f"{name.replace('_to_', '->')}, connection #{connection}, {plan!r}"
        self.position = 0  # bytes moved in this direction
        self.ended: tuple[Fault, str] | None = None  # half_close / stall of this direction
        self._next_cut = self._draw_cut(0)
        # With max_chunk, one awkward cut per drawn chunk (the first awkward place in it):
        # cutting at every one made a text of accents or CJK move 1-2 bytes at a time.
        self._awkward_at: int | None = None  # where the awkward cut decided last falls
        self._awkward_spent: int | None = None  # the chunk end (_next_cut) whose awkward cut was made
        self._frames = _FrameCounter()
        k = self.faults.disconnect_in_frame
        self._frame_cut = None if k is None else self._rng.randint(1, _MAX_FRAME_CUT)

    def _draw_cut(self, start: int) -> int | None:
        if self.faults.max_chunk is None:
            return None
        return start + self._rng.randint(1, self.faults.max_chunk)

    def reason(self, what: str) -> str:
        """A failure message naming the direction, the position and the plan's seed."""
        return f"{what} after {self.position} bytes ({self._tag})"

    def next_step(self, view: Bytes) -> Step:
        """Decide what happens to the bytes ``view`` that are ready to cross now.

        ``size`` may be 0 when a fault happens before any of them moves.
        """
        broken = self._shared.broken or self.ended
        if broken is not None:
            return Step(0, fault=broken[0], reason=broken[1])
        faults = self.faults
        size = len(view)
        fault: Fault | None = None
        what = ""
        if self._next_cut is not None:
            size = min(size, self._next_cut - self.position)
        if faults.awkward_splits and (self._next_cut is None or self._awkward_spent != self._next_cut):
            cut = _awkward_cut(view, size)
            if cut is not None:
                size = cut
                self._awkward_at = self.position + cut
        if faults.disconnect_in_frame is not None and self._frame_cut is not None:
            frames = self._frames
            if frames.done + 1 == faults.disconnect_in_frame:
                left = self._frame_cut - frames.into
                if left <= size:
                    size, fault, what = left, "close", f"closed in frame {faults.disconnect_in_frame}"
            elif frames.done + 1 < faults.disconnect_in_frame:
                end = frames.until_boundary(bytes(view[:size]))
                if end is not None:
                    size = end
        limit = self.plan.disconnect_after
        if limit is not None and limit - self._shared.total <= size:
            size, fault, what = limit - self._shared.total, "close", f"disconnected at byte {limit} of the link"
        ends: tuple[tuple[str, Fault], ...] = (
            ("reset_after", "reset"),
            ("half_close_after", "half_close"),
            ("stall_after", "stall"),
        )
        for attr, kind in ends:
            after: int | None = getattr(faults, attr)
            if after is not None and after - self.position <= size:
                size, fault, what = after - self.position, kind, f"{kind.replace('_', '-')} ({attr}={after})"
        size = max(size, 0)
        delay = 0.0
        if size:
            delay = faults.latency
            if faults.jitter:
                delay += self._delay_rng.uniform(0.0, faults.jitter)
            if faults.bandwidth is not None:
                delay += size / faults.bandwidth
        reason = ""
        if fault is not None:
            reason = f"fault plan: {what} after {self.position + size} bytes ({self._tag})"
        return Step(size, delay, fault, reason)

    def arrival(self, sent: float, step: Step, before: float) -> float:
        """When a chunk sent at ``sent`` reaches the peer, the one before it at ``before``.

        As over a network link: its latency and jitter after it was sent (chunks in
        flight together wait them out together), plus its time on the wire at the
        plan's bandwidth after the chunk before it (the link carries one at a time),
        and never before that chunk.
        """
        bandwidth = self.faults.bandwidth
        wire = 0.0 if bandwidth is None else step.size / bandwidth
        return max(before, sent + step.delay - wire) + wire

    def commit(self, data: bytes, step: Step) -> None:
        """Record that ``data`` (the step's bytes) crossed, and that its fault happened."""
        moved = len(data)
        self.position += moved
        self._shared.total += moved
        if self.position == self._awkward_at:
            self._awkward_spent = self._next_cut
        if self._next_cut is not None and self.position >= self._next_cut:
            self._next_cut = self._draw_cut(self.position)
        if self.faults.disconnect_in_frame is not None:
            self._frames.feed(data)
        if step.fault in ("close", "reset"):
            self._shared.broken = (step.fault, step.reason)
        elif step.fault in ("half_close", "stall"):
            self.ended = (step.fault, step.reason)


class LinkState:
    """The decisions for one connection: a :class:`DirectionState` per direction.

    ``connection`` numbers the connections made with one plan (the proxy counts
    them), so each connection gets its own but reproducible randomness.
    """

    def __init__(self, plan: FaultPlan, connection: int = 0) -> None:
        self.plan = plan
        self.connection = connection
        self._shared = _Shared()
        self.client_to_server = DirectionState(plan, "client_to_server", connection, self._shared)
        self.server_to_client = DirectionState(plan, "server_to_client", connection, self._shared)

    @property
    def broken(self) -> tuple[Fault, str] | None:
        """``(fault, reason)`` once the link was closed or reset by the plan."""
        return self._shared.broken

    def refused(self) -> str | None:
        """The refusal message if the plan refuses this connection, else None."""
        if self.plan.refuse_connect:
            return f"connection refused by the fault plan (connection #{self.connection}, {self.plan!r})"
        return None
