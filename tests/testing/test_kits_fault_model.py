"""The four kits agree on what a plan's close, reset or half-close does to the sender (review13 F3).

As over a network: the fault happens when the bytes before it arrive; the reader
gets those bytes first; the send that crosses the fault goes through (its bytes
after the fault are lost, as is whatever is sent while the fault is on its way),
and the sender learns of the fault from its next read. Before: with no latency,
loopback() raised the fault to the sender at the send that crossed it (notify()
got ConnectionLost 'connection lost while sending'), where the other kits let that
send through; and a reset on loopback()'s pipe dropped the bytes before it.
"""

from __future__ import annotations

from typing import Any

import pytest
from _kits_support import Call, on_kits, same

from jsonrpc_mini import ConnectionLost
from jsonrpc_mini.testing import FaultPlan, FaultyTransport, pipe_pair

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("error::ResourceWarning")]

FIRST = len(b'{"jsonrpc":"2.0","method":"log","params":[1]}\n')  # the first notification's bytes
PAYLOAD = "x" * 150
FAULTS = [
    {"disconnect_after": FIRST + 10},
    {"disconnect_in_frame": 2},
    {"half_close_after": FIRST + 10},
    {"reset_after": FIRST + 10},
]
# The sync server may drop a notification it read when a reset comes right behind it
# (it reads on before running it): what reached the server is compared for the others.
CLOSES = [fault for fault in FAULTS if "reset_after" not in fault]


def sends(names: list[str]) -> tuple[Any, Any]:
    """The work (sync, async): notify log(1), then each of ``names`` (a notification
    ``-log`` of PAYLOAD, or an ``echo`` call), one after another; their outcomes."""

    def work(call: Call) -> object:
        return [call("-log", 1), *(call(name, PAYLOAD) for name in names)]

    async def awork(call: Call) -> object:
        return [await call("-log", 1), *[await call(name, PAYLOAD) for name in names]]

    return work, awork


def fault_id(fault: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in fault.items())


@pytest.mark.parametrize("fault", FAULTS, ids=fault_id)
def test_the_send_that_crosses_a_fault_goes_through(fault: dict[str, int]) -> None:
    # No latency: the second notification crosses the fault. It goes through on every
    # kit; the call after it gets ConnectionLost from its read. (loopback() raised
    # ConnectionLost 'connection lost while sending' to the notification.)
    logged: dict[str, list[object]] = {}
    served = 1 if fault in CLOSES else 0
    results = on_kits(FaultPlan(seed=12, **fault), 5.0, *sends(["-log", "echo"]), logged=logged, served=served)
    assert results == same(["sent", "sent", ConnectionLost])
    if fault in CLOSES:
        assert logged == same([1])  # what came before the fault was served, nothing after


@pytest.mark.parametrize("fault", CLOSES, ids=fault_id)
def test_what_is_sent_while_a_fault_is_on_its_way_is_lost(fault: dict[str, int]) -> None:
    # Latency 1 s: both later notifications are sent before the fault arrives; their
    # bytes (after the fault) are lost, silently, as bytes written into a socket whose
    # link is cut; the call after them learns of it from its read.
    logged: dict[str, list[object]] = {}
    plan = FaultPlan(seed=13, latency=1.0, **fault)
    results = on_kits(plan, 5.0, *sends(["-log", "-log", "echo"]), logged=logged, served=1)
    assert results == same(["sent", "sent", "sent", ConnectionLost])
    assert logged == same([1])


def test_a_fault_arrives_behind_the_bytes_before_it_on_the_pipe() -> None:
    # Over loopback()'s pipe, with no latency: the send goes through, the reader takes
    # the bytes before the fault, then the fault (a reset dropped those bytes); the
    # bytes after it never come.
    for fault, after in (("reset_after", ConnectionResetError), ("disconnect_after", b"")):
        a, b = pipe_pair()
        faulty = FaultyTransport(a, FaultPlan(seed=14, **{fault: 4}))
        faulty.send(b"0123456789")
        assert b.recv(100, 1.0) == b"0123"
        if isinstance(after, bytes):
            assert b.recv(100, 1.0) == after
        else:
            with pytest.raises(after):
                b.recv(100, 1.0)
        faulty.close()
        b.close()


def test_a_relays_fault_becomes_known_once_the_bytes_before_it_are_handed_on() -> None:
    # The proxy of LoopbackServer reads through a FaultyTransport and forwards what it
    # reads; its other direction closes its end as soon as the link is broken. So the
    # fault behind the bytes one read returns is made known by the next read, after the
    # relay forwarded them: made known first, the other direction sometimes closed the
    # server's socket before the bytes reached it (~1 run in 5 lost a notification).
    a, b = pipe_pair()
    inner = _NoTimers(a)
    faulty = FaultyTransport(inner, FaultPlan(seed=15, disconnect_after=4), side="server")
    b.send(b"0123456789")
    assert faulty.recv(100, 1.0) == b"0123"
    assert faulty.link.broken is None  # (not yet: the relay has not forwarded them)
    assert faulty.recv(100, 1.0) == b""
    assert faulty.link.broken is not None
    assert inner.closed
    b.close()


class _NoTimers:
    """A pipe end without ``call_at``: a transport that cannot run an action later (a socket)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def send(self, data: bytes) -> None:
        self.inner.send(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        return self.inner.recv(max_bytes, timeout)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.inner.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed  # type: ignore[no-any-return]
