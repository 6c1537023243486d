"""FakeSocket answers as a real connected socket does, for the calls a user's code makes.

Each scenario runs on one end of a real ``socket.socketpair()`` (the peer writes the
bytes) and on a ``FakeSocket`` scripted with the same bytes; the answers must agree.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jsonrpc_mini.testing import FakeSocket

pytestmark = pytest.mark.timeout(30)
WAIT = 10.0


@contextmanager
def real(inbound: bytes) -> Iterator[Any]:
    """One end of a socketpair with ``inbound`` waiting to be read, then EOF."""
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(WAIT)
        b.sendall(inbound)
        b.shutdown(socket.SHUT_WR)
        yield a


@contextmanager
def fake(inbound: bytes) -> Iterator[Any]:
    with FakeSocket([inbound]) as sock:
        sock.settimeout(WAIT)
        yield sock


def outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returned, or the type, errno and text of what it raised."""
    try:
        return call()
    except Exception as exc:
        return (type(exc), getattr(exc, "errno", None), str(exc))


@contextmanager
def real_quiet() -> Iterator[Any]:
    """One end of a socketpair whose peer has sent nothing and not closed."""
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(WAIT)
        yield a


@contextmanager
def fake_quiet() -> Iterator[Any]:
    with FakeSocket(eof=False) as sock:
        sock.settimeout(WAIT)
        yield sock


def both(inbound: bytes | None, scenario: Callable[[Any], list[Any]]) -> list[Any]:
    """``scenario``'s answers on a real socket and on a FakeSocket (None: nothing arrives, no EOF)."""
    with real(inbound) if inbound is not None else real_quiet() as sock:
        expected = scenario(sock)
    with fake(inbound) if inbound is not None else fake_quiet() as sock:
        assert scenario(sock) == expected
    return expected


def test_recv_checks_its_size_and_recv_0_takes_nothing() -> None:
    seen = both(
        b"hello",
        lambda s: [outcome(lambda: s.recv(-1)), outcome(lambda: s.recv(0)), outcome(lambda: s.recv(10))],
    )
    assert seen == [(ValueError, None, "negative buffersize in recv"), b"", b"hello"]


def test_a_read_of_nothing_returns_at_once_when_nothing_has_arrived() -> None:
    """recv(0) and recv_into() of an empty buffer do not wait (the fake waited for its script, then timed out)."""

    def scenario(s: Any) -> list[Any]:
        seen = [outcome(lambda: s.recv(0)), outcome(lambda: s.recv_into(bytearray(0)))]
        s.setblocking(False)
        seen += [outcome(lambda: s.recv(0)), outcome(lambda: s.recv(1))[:2]]
        return seen

    assert both(None, scenario) == [b"", 0, b"", (BlockingIOError, errno.EAGAIN)]


def test_reads_check_their_sizes_as_a_socket() -> None:
    def scenario(s: Any) -> list[Any]:
        return [
            outcome(lambda: s.recv(1.5)),
            outcome(lambda: s.recv_into(bytearray(5), 10)),
            outcome(lambda: s.recv_into(bytearray(5), -1)),
            outcome(lambda: s.recv(True)),  # (an int: one byte)
        ]

    assert both(b"hi", scenario) == [
        (TypeError, None, "'float' object cannot be interpreted as an integer"),
        (ValueError, None, "buffer too small for requested bytes"),
        (ValueError, None, "negative buffersize in recv_into"),
        b"h",
    ]


def test_shutdown_refuses_an_unknown_how() -> None:
    seen = both(None, lambda s: [outcome(lambda: s.shutdown(7)), outcome(lambda: s.send(b"x"))])
    assert seen == [(OSError, errno.EINVAL, "[Errno 22] Invalid argument"), 1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), (ValueError, None, "Invalid value NaN (not a number)")),
        (float("inf"), (OverflowError, None, "timestamp out of range for platform time_t")),
        (-float("inf"), (OverflowError, None, "timestamp out of range for platform time_t")),
        (1e300, (OverflowError, None, "timestamp out of range for platform time_t")),
        (10**30, (OverflowError, None, "timestamp too large to convert to C _PyTime_t")),
        ("1", (TypeError, None, "'str' object cannot be interpreted as an integer")),
        (-1, (ValueError, None, "Timeout value out of range")),
    ],
)
def test_settimeout_refuses_what_a_socket_refuses_and_keeps_the_old_timeout(value: Any, expected: Any) -> None:
    seen = both(b"", lambda s: [outcome(lambda: s.settimeout(value)), s.gettimeout()])
    assert seen == [expected, WAIT]


def test_settimeout_keeps_a_float() -> None:
    def scenario(s: Any) -> list[Any]:
        seen = []
        for value in (True, 2, -0.0, 1.5):
            s.settimeout(value)
            seen.append((s.gettimeout(), type(s.gettimeout())))
        return seen

    assert both(b"", scenario) == [(1.0, float), (2.0, float), (0.0, float), (1.5, float)]


def test_settimeout_refuses_a_negative_timeout_and_keeps_the_old_one() -> None:
    seen = both(b"", lambda s: [outcome(lambda: s.settimeout(-1)), s.gettimeout(), s.getblocking()])
    assert seen == [(ValueError, None, "Timeout value out of range"), WAIT, True]


def test_makefile_rwb_reads_and_writes_through_the_socket() -> None:
    def scenario(s: Any) -> list[Any]:
        f = s.makefile("rwb", buffering=0 if isinstance(s, socket.socket) else -1)
        with f:
            line = f.readline()
            rest = f.read()
            f.write(b"sent")
            f.flush()
            return [type(f).__name__ in ("BufferedRWPair", "SocketIO"), line, rest, f.readable(), f.writable()]

    assert both(b"first\nsecond", scenario) == [True, b"first\n", b"second", True, True]


def test_shutdown_and_close_answer_as_a_socket() -> None:
    def scenario(s: Any) -> list[Any]:
        s.shutdown(socket.SHUT_WR)
        seen = [outcome(lambda: s.send(b"x"))]
        s.shutdown(socket.SHUT_RD)
        seen.append(outcome(lambda: s.recv(10)))
        s.close()
        s.close()  # twice: nothing
        seen += [outcome(lambda: s.recv(10)), outcome(lambda: s.send(b"x")), outcome(s.getpeername)]
        return seen

    seen = both(b"", scenario)
    assert seen[0][:2] == (BrokenPipeError, errno.EPIPE)
    assert seen[1] == b""
    assert [s[:2] for s in seen[2:]] == [(OSError, errno.EBADF)] * 3


def test_shut_rd_drops_the_unread_script_a_deliberate_difference() -> None:
    """Linux still returns bytes received before SHUT_RD, the BSDs not: FakeSocket gives EOF at once."""
    sock = FakeSocket([b"unread"], eof=False)
    sock.shutdown(socket.SHUT_RD)
    assert sock.recv(10) == b""
    assert sock.shutdowns == [socket.SHUT_RD]


def test_repr_says_whether_it_is_closed() -> None:
    sock = FakeSocket([b"ab", b"c"])
    sock.sendall(b"xyz")
    assert repr(sock) == "<FakeSocket 2 scripted, 3 bytes sent>"
    sock.close()
    assert repr(sock) == "<FakeSocket closed>"
    with socket.socket() as s:  # as a real socket's repr does
        s.close()
        assert "closed" in repr(s)
