"""aio.RPCServer on a TLS port: a plain-text client gets the sync server's answer; TLS works as before.

Invariant: a client whose first byte is not a TLS handshake record reads exactly
the sync server's one-line -32000 "this server speaks TLS" error, then EOF, even
after sending a large request first; a TLS client is served as before (TCP and
Unix sockets, data arriving with the handshake's end included); connections still
in the peek or the handshake are bounded by handshake_timeout and closed by
shutdown(), with nothing left for the loop to report; a connection waiting at the
gate holds one descriptor, its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import ssl
import tempfile
import warnings
from typing import Any

import pytest
from _aio_support import WAIT, run, serving, unraisable, until
from _driver_helpers import tls_contexts

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, ServerError, aio
from jsonrpc_mini._refuse import TLS_REQUIRED, refusal_line

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.timeout(60),
]

ADD = b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}\n'


def make_server(**options: Any) -> aio.RPCServer:
    srv = aio.RPCServer(**options)
    srv.register_function(lambda a, b: a + b, name="add")
    return srv


def exchange(address: Any, data: bytes) -> tuple[bytes, BaseException | None]:
    """Send ``data`` on a plain socket without reading first, then read to EOF: (bytes read, error)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    got = b""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(address)
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                got += chunk
        except OSError as exc:
            return got, exc
    return got, None


def test_a_raw_plain_client_reads_the_same_line_from_both_servers(contexts: Any) -> None:
    server_ctx, _ = contexts

    async def main() -> tuple[bytes, BaseException | None]:
        async with serving(make_server(), ssl=server_ctx) as address:
            return await asyncio.to_thread(exchange, address, ADD)

    got, error = run(main)
    assert error is None
    assert got == refusal_line(TLS_REQUIRED)
    sync = RPCServer()
    address = sync.start("127.0.0.1", 0, ssl=server_ctx)
    try:
        assert exchange(address, ADD) == (got, None)
    finally:
        sync.shutdown()


def test_a_plain_client_that_sent_much_first_still_reads_the_answer(contexts: Any) -> None:
    # Closing with unread input would reset the connection and destroy the answer:
    # the server reads (bounded) what the client sent before it closes.
    server_ctx, _ = contexts
    big = b'{"jsonrpc":"2.0","method":"echo","params":["' + b"x" * (4 << 20) + b'"],"id":1}\n'

    async def main() -> tuple[bytes, BaseException | None]:
        async with serving(make_server(), ssl=server_ctx) as address:
            return await asyncio.to_thread(exchange, address, big)

    got, error = run(main)
    assert (got, error) == (refusal_line(TLS_REQUIRED), None)


def test_the_aio_client_without_ssl_gets_the_servers_error(contexts: Any) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        async with serving(make_server(), ssl=server_ctx) as address:
            async with await aio.connect(*address, timeout=WAIT) as c:
                with pytest.raises(ServerError) as info:
                    await c.add(1, 2)
            assert info.value.code == -32000 and "this server speaks TLS" in str(info.value)
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as c:
                assert await c.add(1, 2) == 3

    run(main)


def test_tls_and_plain_clients_over_a_unix_socket(contexts: Any) -> None:
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no Unix sockets here")
    server_ctx, client_ctx = contexts
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/tls.sock"

        async def main() -> None:
            srv = make_server()
            await srv.start(path=path, ssl=server_ctx)
            try:
                c = await aio.connect(path=path, ssl=client_ctx, server_hostname="localhost", timeout=WAIT)
                async with c:
                    assert await c.add(2, 3) == 5
                got = await asyncio.to_thread(exchange, path, ADD)
                assert got == (refusal_line(TLS_REQUIRED), None)
                with RPCClient(path=path, timeout=WAIT) as plain, pytest.raises(ServerError, match="speaks TLS"):
                    await asyncio.to_thread(plain.add, 1, 2)
            finally:
                await srv.shutdown()

        run(main)


def test_data_arriving_with_the_end_of_the_handshake_is_served() -> None:
    # TLS 1.3: the server's handshake ends with the client's Finished; a client
    # sending its first request in the same write lets the TLS layer pass the
    # request on before the server's handshake task resumes.
    server_ctx, trusted = tls_contexts()
    trusted.minimum_version = ssl.TLSVersion.TLSv1_3

    def client(address: tuple[str, int]) -> bytes:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = trusted.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with socket.create_connection(address, timeout=WAIT) as sock:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    chunk = sock.recv(65536)
                    assert chunk, "the server closed during the handshake"
                    incoming.write(chunk)
            tls.write(ADD)
            sock.sendall(outgoing.read())  # the client's Finished and the request, one write
            reply = b""
            while not reply.endswith(b"\n"):
                try:
                    reply += tls.read(65536)
                except ssl.SSLWantReadError:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    incoming.write(chunk)
            return reply

    async def main() -> bytes:
        async with serving(make_server(), ssl=server_ctx) as address:
            return await asyncio.to_thread(client, address)

    assert json.loads(run(main)) == {"jsonrpc": "2.0", "id": 1, "result": 3}


async def closed_within(reader: asyncio.StreamReader, timeout: float = WAIT) -> bool:
    """Whether the server closes this raw connection (EOF or reset) within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return True


def test_silent_and_stalled_handshakes_are_closed_after_handshake_timeout(contexts: Any) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        srv = make_server(handshake_timeout=0.5)
        async with serving(srv, ssl=server_ctx) as address:
            silent = await asyncio.open_connection(*address)
            stalled = await asyncio.open_connection(*address)
            stalled[1].write(b"\x16\x03\x01")  # a handshake record begun, never finished
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as c:
                assert await c.add(1, 1) == 2  # not held up by the two
            for reader, writer in (silent, stalled):
                assert await closed_within(reader), "a connection was kept past handshake_timeout"
                writer.close()
            assert not srv._gates
            assert srv.connection_count == 0

    run(main)


def test_shutdown_closes_connections_in_the_peek_the_handshake_and_the_refusal(contexts: Any) -> None:
    server_ctx, _ = contexts

    async def main() -> None:
        srv = make_server(handshake_timeout=60)
        address = await srv.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        peers = [await asyncio.open_connection(*address) for _ in range(3)]
        try:
            peers[1][1].write(b"\x16\x03\x01")
            # Sent and not read: the refusal's drain lasts until the client stops or a second passes.
            peers[2][1].write(b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}')
            await until(lambda: sorted(g._stage for g in srv._gates) == ["handshake", "peek", "refuse"])
            await srv.shutdown()
            assert not srv._gates
            for reader, _ in peers:
                assert await closed_within(reader, 5.0), "shutdown left a connection open"
        finally:
            for _, writer in peers:
                writer.close()

    run(main)


def test_asyncio_run_ending_during_a_handshake_leaves_nothing_to_report(contexts: Any) -> None:
    server_ctx, _ = contexts
    errors: list[dict[str, Any]] = []
    srv = make_server(handshake_timeout=60)
    peers: list[socket.socket] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        address = await srv.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        for first in (b"", b"\x16\x03\x01"):
            peers.append(socket.create_connection(address, timeout=WAIT))
            peers[-1].sendall(first)
        await until(lambda: sorted(g._stage for g in srv._gates) == ["handshake", "peek"])
        # Returns with the server running and both connections in the gate.

    try:
        with unraisable() as lost, warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            asyncio.run(main(), debug=True)
            gc.collect()
        assert not errors, [context.get("message") for context in errors]
        assert not lost, [str(item.exc_value) for item in lost]
        assert not srv._gates and srv.address is None
        for peer in peers:
            with contextlib.suppress(ConnectionError):
                while peer.recv(65536):
                    pass
    finally:
        for peer in peers:
            peer.close()


def test_max_connections_counts_served_tls_connections_only(contexts: Any) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        srv = make_server(max_connections=1)
        async with serving(srv, ssl=server_ctx) as address:
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as first:
                assert await first.add(1, 2) == 3
                with pytest.raises((ServerError, ConnectionLost), match="too many connections"):
                    async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as second:
                        await second.add(1, 2)
                got = await asyncio.to_thread(exchange, address, ADD)
                assert got == (refusal_line(TLS_REQUIRED), None)
                assert srv.connection_count == 1
                assert await first.add(2, 2) == 4
            await until(lambda: srv.connection_count == 0)
            async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as third:
                assert await third.add(3, 3) == 6

    run(main)


def test_a_loop_that_cannot_watch_descriptors_still_serves_tls(contexts: Any) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def no_readers(*args: Any) -> None:
            raise NotImplementedError("like the proactor event loop")

        loop.add_reader = no_readers  # type: ignore[method-assign]
        try:
            async with serving(make_server(), ssl=server_ctx) as address:
                c = await aio.connect(*address, ssl=client_ctx, timeout=WAIT)
                async with c:
                    assert await c.add(4, 5) == 9
        finally:
            del loop.add_reader

    run(main)


@pytest.mark.parametrize("first", [b"", b"\x16\x03\x01", b"{"])
def test_a_loop_closed_by_hand_reports_no_task_of_a_connection_in_the_gate(contexts: Any, first: bytes) -> None:
    server_ctx, _ = contexts
    errors: list[dict[str, Any]] = []
    peers: list[socket.socket] = []

    async def main() -> None:
        srv = make_server(handshake_timeout=60)  # (made here: once the loop is closed nothing holds it)
        address = await srv.start("127.0.0.1", 0, ssl=server_ctx)
        assert isinstance(address, tuple)
        peers.append(socket.create_connection(address, timeout=WAIT))
        peers[0].sendall(first)
        stage = {b"": "peek", b"{": "refuse"}.get(first, "handshake")
        await until(lambda: [g._stage for g in srv._gates] == [stage])

    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        with unraisable() as lost, warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # the transports nobody closed
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()  # no cancelling, no shutdown_asyncgens
            gc.collect()
        assert not errors, [context.get("message") for context in errors]
        assert not lost, [str(item.exc_value) for item in lost]
    finally:
        for peer in peers:
            peer.close()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd (Linux)")
def test_a_connection_waiting_at_the_gate_holds_one_descriptor(contexts: Any) -> None:
    # b644ffb's gate watched a duplicate of each waiting connection's descriptor:
    # silent peers cost twice their number, and at RLIMIT_NOFILE 256 140 of them
    # left no room for a legitimate client (review q15).
    server_ctx, client_ctx = contexts
    count = 20

    async def main() -> None:
        srv = make_server(handshake_timeout=60)
        async with serving(srv, ssl=server_ctx) as address:
            before = open_descriptors()
            silent = [socket.create_connection(address, timeout=WAIT) for _ in range(count)]
            try:
                await until(lambda: len(srv._gates) == count)
                assert all(gate._stage == "peek" for gate in srv._gates)
                held = open_descriptors() - before - count  # (the silent clients' own sockets)
                assert count <= held <= count + 2, f"{count} connections at the gate hold {held} descriptors"
                async with await aio.connect(*address, ssl=client_ctx, timeout=WAIT) as c:
                    assert await c.add(1, 2) == 3
            finally:
                for sock in silent:
                    sock.close()
            await until(lambda: not srv._gates)
            await until(lambda: open_descriptors() <= before)
            assert open_descriptors() == before

    run(main)
