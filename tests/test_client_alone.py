"""The sync client's usual call (alone on its connection) sends and reads in one short path.

``_Link._alone`` writes the request, makes one read and, when that read is exactly
this call's success reply, hands the reading turn back and returns its result (see
test_client_lone_handback.py). Everything else that read can bring goes on the general way, as if the
general reader had made the read: these tests give it each of those cases, with and
without a timeout (both take the short path).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from _driver_helpers import WAIT, FakeServer, Peer, serving

from jsonrpc_mini import (
    ConnectionLost,
    InvalidRequest,
    MethodNotFound,
    RPCClient,
    RPCError,
    RPCServer,
    SocketTransport,
)

pytestmark = pytest.mark.timeout(60)

TIMEOUTS = pytest.mark.parametrize("timeout", [None, WAIT], ids=["no-timeout", "timeout"])
TOO_LARGE = {"code": -32600, "message": "Invalid Request: message too large"}
NULL_ERROR = json.dumps({"jsonrpc": "2.0", "id": None, "error": TOO_LARGE}).encode() + b"\n"


def _reply(id_: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode() + b"\n"


def _request_id(peer: Peer) -> Any:
    return json.loads(peer.until())["id"]


class _Chunky(SocketTransport):
    """Reads at most 7 bytes at a time: every reply line arrives in pieces."""

    __slots__ = ()

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        return super().recv(min(max_bytes, 7), timeout)


class _SendFails(SocketTransport):
    """Every send fails as on a connection the server has closed."""

    __slots__ = ()

    def send(self, data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def send_within(self, data: bytes, timeout: float) -> None:
        self.send(data)


def _echo_server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda x: x, name="echo")
    return server


@TIMEOUTS
def test_a_reply_read_in_pieces_after_another_reply(timeout: float | None) -> None:
    # The first read holds part of a line: the framer's (the general way) from that read on.
    def script(peer: Peer) -> None:
        id_ = _request_id(peer)
        peer.sendall(_reply(9999, "not yours") + _reply(id_, "yours"))
        peer.until()  # the client's closing notification

    with FakeServer(script) as fake:
        sock = socket.create_connection(fake.address)
        with RPCClient(transport=_Chunky(sock), timeout=timeout) as client:
            assert client.call("go") == "yours"
            link = client._link
            assert link is not None and not link.pending and not link.reading
            client.notify("bye")
    assert not fake.errors


@TIMEOUTS
def test_an_error_reply_is_raised_and_the_connection_goes_on(timeout: float | None) -> None:
    with serving(_echo_server()) as address, RPCClient(*address, timeout=timeout) as client:
        with pytest.raises(MethodNotFound) as caught:
            client.call("nope")
        assert caught.value.method == "nope"
        assert client.echo(5) == 5
        link = client._link
        assert link is not None and not link.pending and not link.reading


@TIMEOUTS
def test_a_call_whose_connection_is_closed_as_its_reply_arrives_fails(timeout: float | None) -> None:
    # close() from another thread after the read and before the reply is stored: the
    # call fails with the close's ConnectionLost, not with the reply it did not keep.
    with serving(_echo_server()) as address, RPCClient(*address, timeout=timeout) as client:
        link = client._link
        assert link is not None
        decode_line = link.proto.decode_line

        def decode_then_close(data: bytes) -> Any:
            client.close()
            return decode_line(data)

        link.proto.decode_line = decode_then_close  # type: ignore[method-assign]
        with pytest.raises(ConnectionLost, match="the client was closed"):
            client.echo(1)


@TIMEOUTS
def test_a_reply_read_alone_ends_what_the_server_said(timeout: float | None) -> None:
    # An error with id null that no call could take is quoted if the connection is then
    # lost, until the server sends more: here the next call's own reply, read alone.
    def script(peer: Peer) -> None:
        peer.until()  # the notification: the null error below may be its
        first = _request_id(peer)
        peer.sendall(_reply(first, "a") + NULL_ERROR)  # one read: the reply, then the error
        peer.sendall(_reply(_request_id(peer), "b"))
        peer.until()  # the last call, answered by closing
        peer.close()

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=timeout) as client:
        client.notify("log", "x")
        assert client.call("first") == "a"
        link = client._link
        assert link is not None and link.said == TOO_LARGE["message"]  # logged, not raised
        assert client.call("second") == "b"
        assert link.said is None
        with pytest.raises(ConnectionLost) as caught:
            client.call("third")
        assert "the server said" not in str(caught.value)
    assert not fake.errors


@TIMEOUTS
def test_a_failed_send_raises_the_servers_answer_already_received(timeout: float | None) -> None:
    # The server answered the call (refused it) and closed before the request was all
    # sent: the call raises that answer, read after the failed send, not ConnectionLost.
    ours, theirs = socket.socketpair()
    with theirs:
        answer = {"jsonrpc": "2.0", "id": 1, "error": TOO_LARGE}
        theirs.sendall(json.dumps(answer).encode() + b"\n")
        with RPCClient(transport=_SendFails(ours), timeout=timeout) as client:
            with pytest.raises(InvalidRequest, match="message too large") as caught:
                client.call("big")
            assert not isinstance(caught.value, ConnectionLost)
            link = client._link
            assert link is not None and link.lost is not None


def test_a_reply_line_that_does_not_decode_is_read_twice_as_before() -> None:
    # The short path's one-line step fails on it; the general way then tries the line
    # with its lines step only (the one-line step would fail again), then the framer
    # reports it (its id cannot be read, but it is the one call in flight's: that
    # call fails, review15 N1), and the connection goes on.
    def script(peer: Peer) -> None:
        id_ = _request_id(peer)
        peer.sendall(b'{"jsonrpc":"2.0","id":' + str(id_).encode() + b',"result":}\n')
        peer.sendall(_reply(_request_id(peer), "next"))
        peer.until()  # the client's closing notification

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as client:
        link = client._link
        assert link is not None
        reads: list[bytes] = []

        class CountingCodec:  # the connection's one-step decoding counted (the framer has its own)
            def __init__(self, codec: Any) -> None:
                self._codec = codec

            def loads(self, data: Any) -> Any:
                reads.append(bytes(data))
                return self._codec.loads(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._codec, name)

        link.proto.codec = CountingCodec(link.proto.codec)  # type: ignore[assignment]
        with pytest.raises(RPCError, match="the server's reply could not be read: Parse error"):
            client.call("bad")
        assert len([text for text in reads if b'"result":}' in text]) == 2
        assert client.call("again") == "next"
        client.notify("bye")
    assert not fake.errors
