"""Seeded fault plans: what goes wrong on a test kit's connection, checked when made.

:class:`FaultPlan` (for both directions, with :class:`DirectionFaults` for one
direction only) is data: frozen, validated and replayable from its repr. The
decisions a plan leads to, piece by piece, are ``_plan``'s (``LinkState``), which
also re-exports these names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from .._remote import is_count

__all__ = ["DIRECTIONS", "DirectionFaults", "DirectionName", "Fault", "FaultPlan"]

DirectionName = Literal["client_to_server", "server_to_client"]
DIRECTIONS: tuple[DirectionName, DirectionName] = ("client_to_server", "server_to_client")

Fault = Literal["close", "reset", "half_close", "stall"]
"""What happens to the link: ``close`` (both ends read EOF), ``reset`` (both ends get
ConnectionResetError), ``half_close`` (this direction ends; the other keeps working),
``stall`` (this direction moves no more bytes and never closes)."""


def _is_seconds(value: object) -> bool:
    """A finite real number >= 0 (not a bool): a delay."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _check_flag(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` (the option ``name``) is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, not {value!r}")


@dataclass(frozen=True, slots=True)
class DirectionFaults:
    """The faults of one direction of a link (client->server or server->client).

    - ``max_chunk``: every read and write moves 1..max_chunk bytes (seeded sizes).
    - ``awkward_splits``: also cut inside UTF-8 sequences, right after a backslash
      (inside a string escape) and between ``\\r`` and ``\\n``: with ``max_chunk``,
      at the first such place of each chunk (so each stays up to its drawn size);
      without, at every such place.
    - ``latency`` + ``jitter``: each chunk arrives ``latency`` plus a seeded
      ``uniform(0, jitter)`` seconds after it was sent; chunks in flight together
      wait that out together (on every kit). ``bandwidth`` (bytes/s) adds
      ``len/bandwidth``, one chunk after another.
    - ``disconnect_in_frame=k``: the link closes part way through the k-th frame
      (message) of this direction, 1..24 bytes into it (seeded).
    - ``half_close_after=N``: this direction ends after N bytes (the reader gets
      EOF, the writer BrokenPipeError); the other direction keeps working.
    - ``reset_after=N``: after N bytes the link is reset (RST): both ends get
      ConnectionResetError.
    - ``stall_after=N``: after N bytes nothing more arrives, and nothing closes.
    """

    max_chunk: int | None = None
    awkward_splits: bool = False
    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    disconnect_in_frame: int | None = None
    half_close_after: int | None = None
    reset_after: int | None = None
    stall_after: int | None = None

    def __post_init__(self) -> None:
        if self.max_chunk is not None and not is_count(self.max_chunk, 1):
            raise ValueError("max_chunk must be an integer of at least 1 (or None for no splitting)")
        if not (_is_seconds(self.latency) and _is_seconds(self.jitter)):
            raise ValueError("latency and jitter must be finite numbers of seconds >= 0")
        if self.bandwidth is not None and not (_is_seconds(self.bandwidth) and self.bandwidth > 0):
            raise ValueError(
                f"bandwidth must be a positive number of bytes per second (or None), not {self.bandwidth!r}"
            )
        _check_flag("awkward_splits", self.awkward_splits)
        if self.disconnect_in_frame is not None and not is_count(self.disconnect_in_frame, 1):
            raise ValueError("disconnect_in_frame must be an integer frame number, counted from 1 (or None)")
        for name in ("half_close_after", "reset_after", "stall_after"):
            value = getattr(self, name)
            if value is not None and not is_count(value, 0):
                raise ValueError(f"{name} must be an integer number of bytes >= 0 (or None)")

    @property
    def active(self) -> bool:
        """Whether this direction has any fault at all."""
        return self != _NO_FAULTS

    def __repr__(self) -> str:
        return f"DirectionFaults({_changed(self, ())})"


_NO_FAULTS = DirectionFaults()
_DIRECTION_FIELDS = tuple(f.name for f in dataclasses.fields(DirectionFaults))


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """A seeded, reproducible description of what goes wrong on a connection.

    Example::

        from jsonrpc_mini.testing import FaultPlan, loopback
        plan = FaultPlan(seed=7, max_chunk=1, latency=0.001)
        with loopback(server, faults=plan) as client:
            assert client.add(1, 2) == 3

    The fields of :class:`DirectionFaults` given here apply to both directions;
    ``client_to_server=`` / ``server_to_client=`` (a ``DirectionFaults``) replace
    them for one direction. Link-wide faults:

    - ``disconnect_after=N``: the link closes after N bytes of both directions
      together (both ends read EOF; writes raise BrokenPipeError).
    - ``refuse_connect``: connecting fails with ConnectionRefusedError.
    - ``connect_delay``: seconds before the connection moves its first byte.
    - ``close_delay``: seconds a close (or half-close) takes to reach the peer, either
      end's alike, and the plan's own (both ends see it that long after the bytes
      before it arrive; a reset is not delayed). A ``FaultyTransport`` waits them
      out in its ``close()`` (``shutdown_write()``) and reads the peer's EOF that
      long after it came;
      ``LoopbackServer``'s proxy holds either end's close that long. Leaving a kit
      takes that long too (``LoopbackServer``: once for all connections, at most
      5 s): keep it short.

    The same seed (an integer) gives the same cut points and failure points; every
    error the plan raises names the seed (``repr(plan)`` rebuilds the plan).
    """

    seed: int = 0
    max_chunk: int | None = None
    disconnect_after: int | None = None
    awkward_splits: bool = False
    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    disconnect_in_frame: int | None = None
    half_close_after: int | None = None
    reset_after: int | None = None
    stall_after: int | None = None
    refuse_connect: bool = False
    connect_delay: float = 0.0
    close_delay: float = 0.0
    client_to_server: DirectionFaults | None = None
    server_to_client: DirectionFaults | None = None
    _both: DirectionFaults = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        both = DirectionFaults(**{name: getattr(self, name) for name in _DIRECTION_FIELDS})
        object.__setattr__(self, "_both", both)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            # Any value made cuts (its str() seeds them), but one whose repr is not the
            # same number (7.0, "7", None) made no replayable plan.
            raise ValueError(f"seed must be an integer, not {self.seed!r}")
        if self.disconnect_after is not None and not is_count(self.disconnect_after, 0):
            raise ValueError("disconnect_after must be an integer number of bytes >= 0 (or None)")
        if not (_is_seconds(self.connect_delay) and _is_seconds(self.close_delay)):
            raise ValueError("connect_delay and close_delay must be finite numbers of seconds >= 0")
        _check_flag("refuse_connect", self.refuse_connect)
        for name in DIRECTIONS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, DirectionFaults):
                raise TypeError(
                    f"{name} must be a DirectionFaults (or None), not {type(value).__name__}: "
                    f"write {name}=DirectionFaults(...)"
                )

    def direction(self, name: DirectionName) -> DirectionFaults:
        """The faults that apply to one direction (``client_to_server`` or ``server_to_client``)."""
        override: DirectionFaults | None = getattr(self, name)
        return self._both if override is None else override

    @property
    def active(self) -> bool:
        """Whether the plan injects any fault at all (an inactive plan changes nothing)."""
        return (
            self.disconnect_after is not None
            or self.refuse_connect
            or self.connect_delay > 0
            or self.close_delay > 0
            or any(self.direction(name).active for name in DIRECTIONS)
        )

    def replace(self, **changes: object) -> FaultPlan:
        """A copy of this plan with some fields changed (e.g. another ``seed``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        changed = _changed(self, ("seed", "_both"))
        return f"FaultPlan(seed={self.seed}{', ' if changed else ''}{changed})"


def _changed(obj: FaultPlan | DirectionFaults, skip: tuple[str, ...]) -> str:
    """``name=value`` for each field that differs from its default (a replayable repr)."""
    parts = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name not in skip and value != f.default:
            parts.append(f"{f.name}={value!r}")
    return ", ".join(parts)
