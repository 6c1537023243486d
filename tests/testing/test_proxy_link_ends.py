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

import contextlib
import select
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, LoopbackServer, _eager, _proxy, _relay

pytestmark = pytest.mark.timeout(60)

HELLO = b"0123456789"
EARLY = b"early"
# A direction holding a chunk (EARLY) this long does not look at its source meanwhile.
HOLD = DirectionFaults(latency=WAIT * 3)
SIDES = ("client", "server")
OTHER = {"client": "server", "server": "client"}
FROM = {"client": "client_to_server", "server": "server_to_client"}  # the direction an end's bytes take


def proxy_threads() -> set[str]:
    """The names of the kit's proxy threads running now (connection 0's: the tests make one)."""
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("jsonrpc_mini-proxy-0-")}


@contextmanager
def linked(plan: FaultPlan | None) -> Iterator[tuple[dict[str, socket.socket], LoopbackServer]]:
    """The client's socket and the server's (``"client"``, ``"server"``) joined by a kit's proxy with ``plan``."""
    server = RPCServer()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener, LoopbackServer(server, faults=plan) as kit:
            kit.direct_address = listener.getsockname()[:2]  # the proxy relays to the plain socket
            listener.settimeout(WAIT)
            with socket.create_connection(kit.address, timeout=WAIT) as client:
                far, _ = listener.accept()
                with far:
                    far.settimeout(WAIT)
                    running = {"jsonrpc_mini-proxy-0-c2s", "jsonrpc_mini-proxy-0-s2c"}
                    wait_for(lambda: running <= proxy_threads(), "the proxy's relay")
                    yield {"client": client, "server": far}, kit
    finally:
        server.shutdown()


def waits(kit: LoopbackServer, side: str) -> bool:
    """Whether the proxy's direction reading ``side`` holds a chunk or is stalled.

    Nothing the sockets see tells it: this reads the relay's internals.
    """
    if not kit._relays:  # (its threads run before the kit lists it)
        return False
    relay = kit._relays[0]
    source = relay.down if side == "client" else relay.up_in
    assert isinstance(source, _relay.FaultyTransport)
    return source._held is not None or source._in.ended is not None


def reader_full(kit: LoopbackServer, side: str) -> bool:
    """Whether the proxy's reader of ``side``'s socket holds its bound and reads no more (internals too)."""
    if not kit._relays:
        return False
    reader = next(reader for reader in kit._relays[0].readers if reader.thread.name.endswith(f"-{side}-reader"))
    return reader._held >= _eager._HOLD


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (RST)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_all(sock: socket.socket) -> bytes:
    """Everything ``sock`` reads until EOF."""
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


def write_fails(sock: socket.socket) -> None:
    """After reading EOF from a closed link: one write is answered with a reset, the next fails."""
    sock.send(b"x")  # (taken by the kernel; a closed peer answers it with RST, a half-closed one reads it)
    poller = select.poll()
    poller.register(sock, select.POLLPRI)  # (POLLERR and POLLHUP are always reported)
    events = poller.poll(WAIT * 1000)
    assert events and events[0][1] & (select.POLLERR | select.POLLHUP), "the far end took the write: not closed"
    with pytest.raises(ConnectionError):
        sock.send(b"y")


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


def read_until_reset(sock: socket.socket) -> bytes:
    """What ``sock`` reads before a reset; fails if it reads EOF instead."""
    got = b""
    with pytest.raises(ConnectionResetError):
        while chunk := sock.recv(4096):
            got += chunk
    return got


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


GIVEN = {"client": "c2s", "server": "s2c"}  # the relay's direction carrying an end's bytes


def meeting_the_reset(kit: LoopbackServer, writer: socket.socket, aborted: list[object]) -> bool:
    """Whether the proxy's write met the reset: it waits for the held bytes, or (old code) reset.

    Until then ``writer`` sends a byte each poll (the proxy may take one more before the
    reset reaches it). Nothing the sockets see tells it: this reads the relay's internals.
    """
    with contextlib.suppress(OSError):
        writer.send(b"r")
    return bool(aborted) or bool(kit._relays and kit._relays[0]._reset_met)


@pytest.mark.parametrize("plan", [None, FaultPlan(seed=10, max_chunk=2)], ids=["no plan", "plan"])
@pytest.mark.parametrize("side", SIDES)
def test_a_reset_met_by_writing_reaches_the_other_end_after_the_bytes_before_it(
    monkeypatch: pytest.MonkeyPatch, side: str, plan: FaultPlan | None
) -> None:
    # ``side`` sends EARLY, then resets. The proxy's direction from ``side`` holds EARLY:
    # its write to the other end waits at a gate. The other end's bytes are then written
    # to the reset end, and that write fails. The gate opens once the writing direction
    # met the reset (the old code had reset the other end by then): the other end must
    # read EARLY, then the reset, as over a real link, where bytes sent before an RST
    # arrive before it (the old code reset it first: EARLY was lost). Without a plan
    # nothing reads the reset end meanwhile, so the failed write takes its reset and the
    # read after EARLY gets EOF: that is a reset too, on any system (``was_reset``, which
    # tells it from the connection's state, is made to know nothing, as off Linux).
    monkeypatch.setattr(_relay, "was_reset", lambda sock: False)
    entered, gate = threading.Event(), threading.Event()
    aborted: list[object] = []
    real_abort = _relay.abort_transport

    real_send = _relay._Relay._send

    def gated(relay: _relay._Relay, sock: socket.socket, data: bytes) -> None:
        if threading.current_thread().name == f"jsonrpc_mini-proxy-0-{GIVEN[side]}":
            entered.set()
            gate.wait(WAIT)
        real_send(relay, sock, data)

    def abort(transport: _relay.Transport) -> None:
        aborted.append(transport)
        real_abort(transport)

    monkeypatch.setattr(_relay._Relay, "_send", gated)
    monkeypatch.setattr(_relay, "abort_transport", abort)
    with linked(plan) as (ends, kit):
        ends[side].sendall(EARLY)
        assert entered.wait(WAIT), "the proxy passing EARLY on"
        reset(ends[side])
        wait_for(lambda: meeting_the_reset(kit, ends[OTHER[side]], aborted), "the proxy's write meeting the reset")
        gate.set()
        assert read_until_reset(ends[OTHER[side]]) == EARLY


@pytest.mark.parametrize("side", SIDES)
def test_a_reset_met_by_writing_waits_for_a_chunk_the_plan_delays(monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    # As above, with EARLY held by the plan's latency (30 s) instead of a gate; made due at
    # once when the writing direction met the reset (its direction looks again at its next
    # poll, made short). The other end reads EARLY, then the reset (the old code reset it
    # at once: EARLY was lost).
    aborted: list[object] = []
    real_abort = _relay.abort_transport

    def abort(transport: _relay.Transport) -> None:
        aborted.append(transport)
        real_abort(transport)

    monkeypatch.setattr(_relay, "abort_transport", abort)
    monkeypatch.setattr(_relay, "_POLL", 0.05)
    with linked(FaultPlan(seed=11, **{FROM[side]: HOLD})) as (ends, kit):
        ends[side].sendall(EARLY)
        wait_for(lambda: waits(kit, side), "EARLY held")
        reset(ends[side])
        wait_for(lambda: meeting_the_reset(kit, ends[OTHER[side]], aborted), "the proxy's write meeting the reset")
        relay = kit._relays[0]
        source = relay.down if side == "client" else relay.up_in
        assert isinstance(source, _relay.FaultyTransport)
        held = source._held
        if held is not None:  # (None once an abort woke its wait: the old code)
            source._held = (held[0], held[1], 0.0)  # due now
        assert read_until_reset(ends[OTHER[side]]) == EARLY


def gate_client_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Hold the relay's reads of the client's end until the first event is set.

    The second is set when a write of the relay fails with a ConnectionError (a reset
    or broken pipe met by writing).
    """
    gate, failed = threading.Event(), threading.Event()
    made: list[_relay.SocketTransport] = []

    real_send = _relay._Relay._send

    class Gated(_relay.SocketTransport):
        def recv(self, max_bytes: int, timeout: float | None) -> bytes:
            if self is made[0]:  # (the client's end: the first the relay makes)
                gate.wait(WAIT)
            return super().recv(max_bytes, timeout)

    def made_one(sock: socket.socket) -> _relay.SocketTransport:
        transport = Gated(sock)
        made.append(transport)
        return transport

    def send(relay: _relay._Relay, sock: socket.socket, data: bytes) -> None:
        try:
            real_send(relay, sock, data)
        except ConnectionError:
            failed.set()
            raise

    monkeypatch.setattr(_relay, "SocketTransport", made_one)
    monkeypatch.setattr(_relay._Relay, "_send", send)
    return gate, failed


def test_a_reset_met_by_writing_is_not_held_for_close_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # The proxy's write of the server's bytes takes the client's reset (its reader of the
    # client's socket is held back until then); that reader then reads EOF, which the
    # plan's FaultyTransport holds for close_delay (an hour) as it would a close. The
    # server must get the reset without that wait, nor the one for held bytes (_FLUSH,
    # made longer than the server's read timeout: waiting it out fails the read).
    gate, failed = gate_client_reads(monkeypatch)
    monkeypatch.setattr(_relay, "_FLUSH", WAIT * 3)
    monkeypatch.setattr(_relay, "_POLL", 0.05)
    monkeypatch.setattr(_proxy, "_CLOSE_WAIT", 0.0)  # (leaving the kit: no wait for the hour)
    with linked(FaultPlan(seed=13, close_delay=3600.0)) as (ends, _):
        reset(ends["client"])
        ends["server"].sendall(b"reply")
        assert failed.wait(WAIT), "the proxy's write meeting the reset"
        gate.set()
        assert read_until_reset(ends["server"]) == b""


@pytest.mark.parametrize("side", SIDES)
def test_a_reset_met_by_writing_waits_for_no_stalled_direction(monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    # The plan stalled the direction from the resetting end: it hands on nothing more, so
    # the reset reaches the other end without the wait for held bytes (_FLUSH, made longer
    # than the other end's read timeout: waiting it out fails the read with a timeout).
    monkeypatch.setattr(_relay, "_FLUSH", WAIT * 3)
    with linked(FaultPlan(seed=12, **{FROM[side]: DirectionFaults(stall_after=0)})) as (ends, kit):
        ends[side].sendall(EARLY)
        wait_for(lambda: waits(kit, side), "the direction stalled")
        reset(ends[side])
        ends[OTHER[side]].sendall(b"reply")
        assert read_until_reset(ends[OTHER[side]]) == b""


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


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the proxy tells an EOF that hides a reset only on Linux (TCP_INFO)"
)
@pytest.mark.parametrize("plan", [None, FaultPlan(seed=7, max_chunk=1 << 16)], ids=["no plan", "plan"])
def test_a_reset_the_writing_direction_took_is_no_eof_for_the_reading_one(
    monkeypatch: pytest.MonkeyPatch, plan: FaultPlan | None
) -> None:
    # The kernel reports an RST once, to the first call that meets it. Here the proxy's
    # write of the server's bytes to the client takes the client's reset (the read of the
    # client's socket is held back until then; the writing direction's reset of the
    # server's end waits until the reading direction has ended, for the bytes it may
    # hold); the read that follows gets EOF. That EOF must not reach the server as a
    # half-close: it read EOF before the reset (the old code half-closed the server's
    # end: 1 to 3 runs of 200 under a flood).
    gate, resetting = gate_client_reads(monkeypatch)
    with linked(plan) as (ends, _):
        reset(ends["client"])
        ends["server"].sendall(b"reply")
        wait_for(resetting.is_set, "the server->client direction meeting the reset")
        gate.set()
        with pytest.raises(ConnectionResetError):
            ends["server"].recv(4096)


def blocked_writing_to_the_client(kit: LoopbackServer) -> bool:
    """Whether the proxy's server->client direction sits in a write the client's full socket holds up.

    Nothing the sockets see tells it: this reads the relay's socket and its thread's frame.
    """
    if not kit._relays:
        return False
    sock = kit._relays[0].down_out.sock
    if select.select([], [sock], [], 0)[1]:  # (room to write: the write goes on)
        return False
    thread = next((t for t in threading.enumerate() if t.name == "jsonrpc_mini-proxy-0-s2c"), None)
    frame = None if thread is None or thread.ident is None else sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code.co_name in ("_send", "_writable")


def send_until_closed(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` until done or the connection ends."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


@contextmanager
def flooding_the_client(
    monkeypatch: pytest.MonkeyPatch, plan: FaultPlan | None
) -> Iterator[tuple[dict[str, socket.socket], LoopbackServer]]:
    """``linked(plan)`` with the proxy's write to the client blocked: the server sends far more than fits.

    A close of the proxy's socket to the client then fails that write (a broken pipe),
    and is made to wait, the socket shut down but open, until the writing direction has
    handled the failure: unforced, that order came in about half the runs.
    """
    made: list[_relay.SocketTransport] = []

    class Gated(_relay.SocketTransport):
        def close(self) -> None:
            if self is made[0] and threading.current_thread().name != "jsonrpc_mini-proxy-0-s2c":
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                for thread in threading.enumerate():
                    if thread.name == "jsonrpc_mini-proxy-0-s2c":
                        thread.join(WAIT)  # (it handles the failed write, then ends)
            super().close()

    def made_one(sock: socket.socket) -> _relay.SocketTransport:
        transport = Gated(sock)
        made.append(transport)  # (the client's end first)
        return transport

    monkeypatch.setattr(_relay, "SocketTransport", made_one)
    with linked(plan) as (ends, kit):
        sender = threading.Thread(target=send_until_closed, args=(ends["server"], b"z" * (16 << 20)))
        sender.start()
        try:
            wait_for(lambda: blocked_writing_to_the_client(kit), "the proxy's write to the client blocking")
            yield ends, kit
        finally:
            sender.join(WAIT)


@pytest.mark.parametrize("plan", [None, FaultPlan(seed=8, max_chunk=1 << 16)], ids=["no plan", "plan"])
def test_closing_the_kit_while_a_write_to_the_client_blocks_resets_no_one(
    monkeypatch: pytest.MonkeyPatch, plan: FaultPlan | None
) -> None:
    # The write close() cut short is close() at work, not a reset: the client reads the
    # bytes that reached it, then EOF (passed on as a reset, it read ConnectionResetError).
    with flooding_the_client(monkeypatch, plan) as (ends, kit):
        kit.close()
        got = read_all(ends["client"])
    assert got and got == b"z" * len(got)


def test_a_write_to_an_end_the_broken_link_closed_resets_no_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client's bytes break the link (closed in their frame) while the proxy's write
    # to the client blocks: closing the client's end fails that write with a broken
    # pipe, which is the plan's close, not the client's reset: the client reads the
    # bytes that reached it, then EOF (passed on as a reset, it read ConnectionResetError).
    plan = FaultPlan(seed=9, client_to_server=DirectionFaults(disconnect_in_frame=1))
    with flooding_the_client(monkeypatch, plan) as (ends, _):
        ends["client"].sendall(b"x" * 32 + b"\n")
        got = read_all(ends["client"])
    assert got and got == b"z" * len(got)
