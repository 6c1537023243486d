"""What each end sees when LoopbackServer's proxy ends a link: closed, half-closed or reset.

The proxy passes on how a direction ends (``_Relay._pass_on``): where the plan broke
the link (``disconnect_after``) both ends are closed, not half-closed, so both read
EOF and a write then fails (FaultPlan: "writes raise BrokenPipeError"), and the
relay ends at once, though its other direction held a delayed chunk or stalled;
where only one direction ended (``half_close_after``) the other keeps carrying
bytes; an end's reset reaches the other end as a reset, whichever direction meets
it: the one reading the reset end, or the one writing to it (its write fails with a
reset, or with a broken pipe where the reset was read first; where the write took
the reset, the read that follows gets EOF, and passes on no half-close), and where
the proxy met it by writing, after the bytes the reset end sent before it (held for
the plan's delay, or not yet written), as an RST arrives after them on a real link,
waiting for them at most ``_relay._FLUSH`` seconds. A write cut
short by the kit's close() or by the plan closing the link is no reset: the end it
wrote to reads EOF. The "server" here is a plain socket the proxy is pointed at, so
the test sees what its socket gets.
"""

from __future__ import annotations

import socket

import pytest
from _driver_helpers import WAIT, wait_for
from _proxy_link_support import (
    EARLY,
    FROM,
    HELLO,
    HOLD,
    OTHER,
    SIDES,
    linked,
    proxy_threads,
    read_all,
    reader_full,
    reset,
    waits,
    write_fails,
)

from jsonrpc_mini.testing import DirectionFaults, FaultPlan, _relay

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("side", SIDES)
def test_a_link_broken_by_one_ends_bytes_closes_both_ends(side: str) -> None:
    with linked(FaultPlan(seed=1, disconnect_after=len(HELLO))) as (ends, _):
        ends[side].sendall(HELLO + b"lost")
        assert read_all(ends[OTHER[side]]) == HELLO
        write_fails(ends[OTHER[side]])  # (a half-closed end would take this write: no reset)
        assert read_all(ends[side]) == b""
        write_fails(ends[side])


@pytest.mark.parametrize("wait", ["held", "stalled"])
@pytest.mark.parametrize("side", SIDES)
def test_a_broken_link_ends_the_relay_at_once(monkeypatch: pytest.MonkeyPatch, side: str, wait: str) -> None:
    # The other direction waits: it holds a chunk for 30 s, or its plan stalled it. The
    # poll of the proxy's reads is made longer than WAIT, so only being woken ends that
    # wait in time: before, the relay's threads (and its sockets) lived on until the
    # held chunk's delay ended, or until the stalled direction's next poll (0.5 s).
    monkeypatch.setattr(_relay, "_POLL", WAIT * 2)
    waiting = HOLD if wait == "held" else DirectionFaults(stall_after=0)
    limit = len(EARLY + HELLO) if wait == "held" else len(HELLO)  # (a stalled EARLY is not counted)
    with linked(FaultPlan(seed=2, disconnect_after=limit, **{FROM[OTHER[side]]: waiting})) as (ends, kit):
        ends[OTHER[side]].sendall(EARLY)
        wait_for(lambda: waits(kit, OTHER[side]), f"the other direction {wait}")
        ends[side].sendall(HELLO + b"lost")
        assert read_all(ends[OTHER[side]]) == HELLO
        assert read_all(ends[side]) == b""
        wait_for(lambda: not proxy_threads(), "the relay's threads ending")


def test_a_half_closed_direction_leaves_the_other_one_carrying() -> None:
    plan = FaultPlan(seed=3, client_to_server=DirectionFaults(half_close_after=len(HELLO)))
    with linked(plan) as (ends, _):
        ends["client"].sendall(HELLO + b"lost")
        assert read_all(ends["server"]) == HELLO  # the server reads EOF...
        ends["server"].sendall(b"reply")  # ...and its reply still reaches the client
        ends["server"].shutdown(socket.SHUT_WR)
        assert read_all(ends["client"]) == b"reply"


@pytest.mark.parametrize("side", SIDES)
def test_a_reset_the_proxy_read_first_reaches_the_other_end_when_it_writes(
    monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    # The direction from the resetting end holds its first bytes (latency), so it does not
    # pass on the reset its reader then reads (the reader's thread ends with it: bytes
    # before an RST are read first). The other end's bytes are then written to the reset
    # end: the write fails with BrokenPipeError (the reset was read already), and the other
    # end must get a reset, as a writer's peer gets one on a real link. It read EOF before
    # (side client: the old code closed the client's end and the woken client->server
    # direction half-closed the server's) or waited the held chunk's 30 s (side server).
    # The held chunk is due after the wait for it (_FLUSH, made short): it is dropped.
    monkeypatch.setattr(_relay, "_FLUSH", 0.01)
    with linked(FaultPlan(seed=4, **{FROM[side]: HOLD})) as (ends, _):
        ends[side].sendall(EARLY)
        reset(ends[side])
        wait_for(lambda: f"jsonrpc_mini-proxy-0-{side}-reader" not in proxy_threads(), "the proxy reading the reset")
        ends[OTHER[side]].sendall(b"reply")
        with pytest.raises(ConnectionResetError):
            ends[OTHER[side]].recv(4096)


@pytest.mark.parametrize("side", SIDES)
def test_a_reset_the_writing_direction_meets_first_reaches_the_other_end(
    monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    # The direction from the resetting end holds its first bytes (latency) and its reader
    # its bound (1 MiB): the RST stays unread on the proxy's socket, behind the rest of
    # the 2 MiB (bytes before an RST are read first), and the other direction meets it when
    # it writes the other end's bytes. The other end then gets a reset, not an EOF (side
    # client: it got one in 5 runs of 6 when the proxy reset the client's end first, which
    # woke the other direction to half-close the server's end; side server: the old code
    # reset only the server's end, and the client waited the held chunk's 30 s). The held
    # bytes are due after the wait for them (_FLUSH, made short): they are dropped.
    monkeypatch.setattr(_relay, "_FLUSH", 0.01)
    with linked(FaultPlan(seed=5, **{FROM[side]: HOLD})) as (ends, kit):
        ends[side].sendall(b"z" * (2 << 20))
        wait_for(lambda: reader_full(kit, side), "the proxy's reader holding its bound")
        reset(ends[side])
        ends[OTHER[side]].sendall(b"reply")
        with pytest.raises(ConnectionResetError):
            ends[OTHER[side]].recv(4096)


def test_closing_the_kit_stops_a_direction_holding_a_delayed_chunk_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server->client direction waits out a held chunk's delay (30 s here) in steps
    # of the proxy's poll; close() must end that wait itself. The poll is made longer
    # than WAIT, so a wait that only the poll ends keeps the relay past the join below.
    monkeypatch.setattr(_relay, "_POLL", WAIT * 2)
    with linked(FaultPlan(seed=6, server_to_client=HOLD)) as (ends, kit):
        ends["server"].sendall(EARLY)
        wait_for(lambda: waits(kit, "server"), "EARLY held")
        relay = kit._relays[0]
        relay.close()
        assert relay.join(WAIT), "a direction kept waiting out its held chunk after close()"
