"""FakeSocket: scripted inbound bytes, recorded writes, real socket exceptions."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, RPCTimeout, SocketTransport
from jsonrpc_mini.testing import FakeSocket, _fake_socket

pytestmark = pytest.mark.timeout(30)

REPLY = b'{"jsonrpc": "2.0", "id": 1, "result": 3}\n'


def test_recv_returns_script_items_then_eof():
    sock = FakeSocket([b"abc", b"defgh"])
    assert sock.recv(2) == b"ab"
    assert sock.recv(100) == b"c"
    assert sock.recv(100) == b"defgh"
    assert sock.recv(100) == b""
    assert sock.recv(100) == b""


def test_recv_into_and_makefile():
    sock = FakeSocket([b"hello", b" world\nnext"])
    buf = bytearray(3)
    assert sock.recv_into(buf) == 3
    assert bytes(buf) == b"hel"
    reader = sock.makefile("rb")
    assert reader.readline() == b"lo world\n"
    assert reader.read() == b"next"
    writer = FakeSocket().makefile("wb")
    writer.write(b"x" * 10)
    writer.flush()


def test_makefile_write_goes_to_sent():
    sock = FakeSocket()
    writer = sock.makefile("wb")
    writer.write(b"abc")
    writer.flush()
    assert sock.sent == b"abc"


def test_scripted_exceptions_are_raised_in_order():
    sock = FakeSocket([b"a", ConnectionResetError, b"b", TimeoutError("timed out")])
    assert sock.recv(10) == b"a"
    with pytest.raises(ConnectionResetError):
        sock.recv(10)
    assert sock.recv(10) == b"b"
    with pytest.raises(socket.timeout):
        sock.recv(10)
    assert sock.recv(10) == b""


def test_timeouts_and_nonblocking_mode_without_data():
    sock = FakeSocket(eof=False)
    sock.settimeout(0.05)
    assert sock.gettimeout() == 0.05
    with pytest.raises(TimeoutError):
        sock.recv(10)
    sock.setblocking(False)
    assert sock.getblocking() is False
    with pytest.raises(BlockingIOError) as info:
        sock.recv(10)
    assert info.value.errno == errno.EAGAIN
    sock.setblocking(True)
    assert sock.gettimeout() is None


def test_feed_from_another_thread_wakes_recv():
    sock = FakeSocket(eof=False)
    sock.settimeout(5.0)
    timer = threading.Timer(0.05, sock.feed, args=(b"late",))
    timer.start()
    try:
        assert sock.recv(10) == b"late"
    finally:
        timer.cancel()
    sock.feed_eof()
    assert sock.recv(10) == b""


def test_partial_sends_and_sendall():
    sock = FakeSocket(max_send=3)
    assert sock.send(b"abcdefg") == 3
    sock.sendall(b"1234567")
    assert sock.writes == [b"abc", b"123", b"456", b"7"]
    assert sock.sent == b"abc1234567"


@pytest.mark.parametrize("max_send", [0, -1, 1.5, "2", True])
def test_a_bad_max_send_is_refused_at_construction(max_send):
    # review10 r8: max_send=0 made sendall spin for ever (ignoring its timeout) and
    # max_send=-1 made send return -1 and drop a byte.
    with pytest.raises(ValueError, match=r"^max_send must be an integer of at least 1"):
        FakeSocket(max_send=max_send)


def test_max_send_of_one_is_accepted():
    sock = FakeSocket(max_send=1)
    assert sock.send(b"abc") == 1
    sock.sendall(b"de")
    assert sock.sent == b"ade"


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_a_bad_max_send_set_later_is_refused_and_the_old_one_kept(value):
    # Setting max_send after construction was not checked: 0 made sendall spin for ever.
    sock = FakeSocket(max_send=2)
    with pytest.raises(ValueError, match=r"^max_send must be an integer of at least 1"):
        sock.max_send = value
    assert sock.max_send == 2
    sock.sendall(b"abc")
    assert sock.writes == [b"ab", b"c"]


def test_max_send_set_later_applies_and_none_lifts_it():
    sock = FakeSocket()
    sock.max_send = 1
    assert sock.send(b"abc") == 1
    sock.max_send = None
    assert sock.send(b"bc") == 2
    assert sock.writes == [b"a", b"bc"]


@pytest.mark.parametrize("value", [-1, 1.5, "5", True])
def test_a_bad_fail_send_after_is_refused_naming_the_option(value):
    # 1.5 and "5" failed at the first send with a bare TypeError (slice indices, str - int);
    # -1 failed like 0 and True like 1.
    with pytest.raises(ValueError, match=r"^fail_send_after must be an integer number of bytes >= 0"):
        FakeSocket(fail_send_after=value)
    sock = FakeSocket(fail_send_after=3)
    with pytest.raises(ValueError, match=r"^fail_send_after must be an integer number of bytes >= 0"):
        sock.fail_send_after = value
    assert sock.fail_send_after == 3


def test_fail_send_after_set_later_applies():
    sock = FakeSocket()
    sock.sendall(b"abc")
    sock.fail_send_after = 5  # counts every byte taken, those before it too
    with pytest.raises(BrokenPipeError):
        sock.sendall(b"defg")
    assert sock.sent == b"abcde"
    sock.fail_send_after = None
    sock.sendall(b"f")
    assert sock.sent == b"abcdef"


def test_send_fails_after_n_bytes():
    sock = FakeSocket(fail_send_after=5, send_error=ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        sock.sendall(b"0123456789")
    assert sock.sent == b"01234"


def test_one_byte_writes_up_to_a_failure_point_take_linear_time():
    # review K3: every send measured the bytes so far by joining all earlier writes,
    # so max_send=1 with fail_send_after=N took time N squared (200,000 bytes: many
    # minutes, past this file's timeout; now well under a second).
    size = 200_000
    sock = FakeSocket(max_send=1, fail_send_after=size)
    sock.sendall(b"x" * size)
    assert len(sock.writes) == size and sock.sent == b"x" * size
    with pytest.raises(BrokenPipeError):
        sock.send(b"y")
    with pytest.raises(BrokenPipeError):  # still failing: the count is of every byte taken
        sock.send(b"z")
    assert len(sock.sent) == size


def test_the_failure_point_falls_inside_a_partial_write():
    sock = FakeSocket(max_send=4, fail_send_after=6)
    assert sock.send(b"abcdef") == 4
    assert sock.send(b"ghij") == 2  # only the 2 bytes left before the failure point
    with pytest.raises(BrokenPipeError):
        sock.send(b"k")
    assert sock.writes == [b"abcd", b"gh"]


def test_shutdown_and_close_behave_like_a_socket():
    sock = FakeSocket([b"data"])
    sock.shutdown(socket.SHUT_WR)
    with pytest.raises(BrokenPipeError):
        sock.send(b"x")
    assert sock.recv(10) == b"data"
    sock.shutdown(socket.SHUT_RD)
    assert sock.recv(10) == b""
    assert sock.shutdowns == [socket.SHUT_WR, socket.SHUT_RD]
    sock.close()
    sock.close()
    assert sock.closed
    with pytest.raises(OSError) as info:
        sock.recv(1)
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError):
        sock.send(b"x")
    assert sock.fileno() == -1


def test_options_addresses_and_context_manager():
    with FakeSocket(peer=("10.0.0.1", 1)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getpeername() == ("10.0.0.1", 1)
        sock.connect(("127.0.0.1", 9))
        assert sock.getpeername() == ("127.0.0.1", 9)
        assert sock.getsockname() == ("127.0.0.1", 54321)
    assert sock.closed


def test_blocking_recv_with_empty_script_fails_instead_of_hanging(monkeypatch):
    monkeypatch.setattr(_fake_socket, "MAX_BLOCK", 0.05)
    with pytest.raises(RuntimeError, match="empty script"):
        FakeSocket(eof=False).recv(1)


def test_rpc_client_over_socket_transport_of_a_fake_socket():
    sock = FakeSocket([REPLY])
    client = RPCClient(transport=SocketTransport(sock), timeout=2)
    assert client.add(1, 2) == 3
    assert sock.sent == b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}\n'
    client.close()
    assert sock.closed


def test_rpc_client_reply_split_into_single_bytes():
    sock = FakeSocket([REPLY[i : i + 1] for i in range(len(REPLY))])
    client = RPCClient(transport=SocketTransport(sock), timeout=2)
    assert client.add(1, 2) == 3


@pytest.mark.parametrize(
    "script",
    [[], [ConnectionResetError("reset")], [REPLY[:10]], [REPLY[:10], ConnectionResetError]],
    ids=["eof", "reset", "eof-mid-reply", "reset-mid-reply"],
)
def test_rpc_client_fails_with_connection_lost(script):
    client = RPCClient(transport=SocketTransport(FakeSocket(script)), timeout=2)
    with pytest.raises(ConnectionLost):
        client.add(1, 2)


def test_rpc_client_times_out_when_nothing_comes():
    client = RPCClient(transport=SocketTransport(FakeSocket(eof=False)), timeout=0.1)
    with pytest.raises(RPCTimeout):
        client.add(1, 2)


def test_rpc_client_send_failure_is_connection_lost():
    client = RPCClient(transport=SocketTransport(FakeSocket(fail_send_after=0)), timeout=1)
    with pytest.raises(ConnectionLost):
        client.add(1, 2)


# A str item (b'' forgotten) used to fail only in recv, with a bare "string argument
# without an encoding" from inside the client; an int became that many zero bytes.
@pytest.mark.parametrize("item", ['{"id": 1}', 5, None, [b"x"], 1.5])
def test_a_script_item_that_is_not_bytes_or_an_exception_is_refused_at_once(item):
    with pytest.raises(TypeError, match=f"script items are bytes or exceptions, not {type(item).__name__}"):
        FakeSocket([b"ok", item])
    sock = FakeSocket(eof=False)
    with pytest.raises(TypeError, match="script items are bytes or exceptions"):
        sock.feed(b"ok", item)
    sock.feed_eof()
    assert sock.recv(10) == b""  # nothing of a refused feed() was taken


def test_a_str_script_item_is_refused_with_the_bytes_to_write():
    with pytest.raises(TypeError, match=r"""not str '\{"id": 1\}': write b'\{"id": 1\}'$"""):
        FakeSocket(['{"id": 1}'])


def test_bytes_like_items_and_exceptions_are_taken():
    sock = FakeSocket([b"a", bytearray(b"b"), memoryview(b"c"), ConnectionResetError, TimeoutError("t")])
    assert [sock.recv(5) for _ in range(3)] == [b"a", b"b", b"c"]
    with pytest.raises(ConnectionResetError):
        sock.recv(5)
    with pytest.raises(TimeoutError):
        sock.recv(5)


# An exception class in the script (README's example: ConnectionResetError) or the
# default send_error was raised bare: "add: connection lost: " with nothing after it.
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BrokenPipeError, errno.EPIPE),
        (ConnectionResetError, errno.ECONNRESET),
        (ConnectionAbortedError, errno.ECONNABORTED),
        (ConnectionRefusedError, errno.ECONNREFUSED),
    ],
)
def test_an_error_class_is_raised_with_the_kernel_s_errno_and_text(error, code):
    sock = FakeSocket([error], fail_send_after=0, send_error=error)
    for action in (lambda: sock.recv(10), lambda: sock.send(b"x")):
        with pytest.raises(error) as info:
            action()
        assert info.value.errno == code
        assert str(info.value) == f"[Errno {code}] {os.strerror(code)}"


def test_a_timeout_class_reads_timed_out_and_instances_are_raised_as_given():
    given = ConnectionResetError("my own words")
    sock = FakeSocket([TimeoutError, given, ValueError])
    with pytest.raises(TimeoutError, match=r"^timed out$"):
        sock.recv(10)
    with pytest.raises(ConnectionResetError) as info:
        sock.recv(10)
    assert info.value is given
    with pytest.raises(ValueError, match=r"^$"):
        sock.recv(10)


def test_the_readme_s_reset_names_the_reset_in_the_client_s_error():
    sock = FakeSocket([REPLY, ConnectionResetError])
    client = RPCClient(transport=SocketTransport(sock), timeout=1)
    assert client.add(1, 2) == 3
    with pytest.raises(ConnectionLost, match=r"^add: connection lost: \[Errno 104\] Connection reset by peer$"):
        client.add(1, 2)
    sock = FakeSocket(fail_send_after=0)  # the default send_error, BrokenPipeError
    client = RPCClient(transport=SocketTransport(sock), timeout=1)
    with pytest.raises(ConnectionLost, match=r"sending: \[Errno 32\] Broken pipe$"):
        client.add(1, 2)
