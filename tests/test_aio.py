"""jsonrpc_mini.aio: calls, handlers, errors, batches, timeouts, cancellation, transports."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import ssl
import tempfile
import threading

import pytest
from _aio_support import WAIT, RawConn, request, run, serving, until
from _driver_helpers import tls_contexts

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def make_server(**kwargs: object) -> aio.RPCServer:
    srv = aio.RPCServer(**kwargs)  # type: ignore[arg-type]

    @srv.register
    async def add(a: int, b: int) -> int:
        return a + b

    @srv.register(name="math.mul")
    def mul(a: int, b: int) -> int:
        return a * b

    @srv.register
    def echo(*args: object, **kwargs: object) -> dict[str, object]:
        return {"args": list(args), "kwargs": kwargs}

    @srv.register
    async def sleep(seconds: float, value: object = None) -> object:
        await asyncio.sleep(seconds)
        return value

    return srv


def test_calls_attribute_call_and_nested_names() -> None:
    async def main() -> None:
        async with serving(make_server()) as (host, port), await aio.connect(host, port, timeout=5) as c:
            assert await c.add(1, 2) == 3
            assert await c.call("add", 40, b=2) == 42
            assert await c.math.mul(6, 7) == 42
            assert await c.echo("测试项", kw1="1") == {"args": ["测试项"], "kwargs": {"kw1": "1"}}
            # method and self pass through as keyword names
            assert await c.echo(method="m", self="s") == {"args": [], "kwargs": {"method": "m", "self": "s"}}
            assert c._connected

    run(main)


def test_notify_runs_the_handler_and_gets_no_reply() -> None:
    async def main() -> None:
        srv = make_server()
        seen: asyncio.Queue[str] = asyncio.Queue()

        @srv.register
        async def log(text: str) -> None:
            await seen.put(text)

        async with serving(srv) as address:
            async with await aio.connect(*address) as c:
                assert await c.notify("log", "x") is None
                assert await asyncio.wait_for(seen.get(), 5) == "x"
            # on the wire: a notification to a failing method is never answered
            raw = await RawConn.open(address)
            await raw.send(request("nope", [1], id_=None))
            await raw.send(request("add", [1, 1], id_=7))
            assert await raw.recv() == {"jsonrpc": "2.0", "id": 7, "result": 2}
            await raw.close()

    run(main)


def test_plain_handlers_run_in_a_thread_pool_by_default() -> None:
    loop_thread = threading.get_ident()

    def where() -> int:
        return threading.get_ident()

    async def main() -> tuple[int, int, str]:
        default = aio.RPCServer()
        default.register_function(where)
        inline = aio.RPCServer(run_sync_in_thread=False)
        inline.register_function(where)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mine")
        custom = aio.RPCServer(executor=pool)
        custom.register_function(lambda: threading.current_thread().name, name="name")
        try:
            async with (
                serving(default) as a1,
                serving(inline) as a2,
                serving(custom) as a3,
                await aio.connect(*a1) as c1,
                await aio.connect(*a2) as c2,
                await aio.connect(*a3) as c3,
            ):
                return await c1.where(), await c2.where(), await c3.name()
        finally:
            pool.shutdown()

    in_pool, on_loop, name = run(main)
    assert on_loop == loop_thread
    assert in_pool != loop_thread
    assert name.startswith("mine")


def test_a_blocking_plain_handler_does_not_block_the_loop() -> None:
    release = threading.Event()

    def block() -> str:
        release.wait(5)
        return "released"

    async def main() -> None:
        srv = make_server()
        srv.register_function(block)
        async with serving(srv) as address, await aio.connect(*address, timeout=10) as c:
            slow = asyncio.create_task(c.block())
            assert await c.add(2, 2) == 4  # answered while block() holds a pool thread
            assert not slow.done()
            release.set()
            assert await slow == "released"

    run(main)


def test_register_instance_exposes_public_methods_only() -> None:
    class Calc:
        def add(self, a: int, b: int) -> int:
            return a + b

        async def neg(self, a: int) -> int:
            return -a

        def _secret(self) -> str:
            return "no"

    async def main() -> None:
        srv = aio.RPCServer()
        assert sorted(srv.register_instance(Calc(), prefix="calc.")) == ["calc.add", "calc.neg"]
        async with serving(srv) as address, await aio.connect(*address) as c:
            assert await c.call("calc.add", 1, 2) == 3
            assert await c.call("calc.neg", 5) == -5
            with pytest.raises(aio.MethodNotFound):
                await c.call("calc._secret")

    run(main)


def test_error_semantics_match_the_sync_server() -> None:
    async def main() -> None:
        srv = make_server()

        @srv.register
        async def boom() -> None:
            raise ValueError("secret detail")

        @srv.register
        def custom() -> None:
            raise aio.ServerError(-32042, "custom", {"why": 1})

        @srv.register
        def nan() -> float:
            return float("nan")

        debug = aio.RPCServer(debug=True)
        debug.register_function(boom)
        async with serving(srv) as a1, serving(debug) as a2:
            async with await aio.connect(*a1) as c:
                with pytest.raises(aio.InternalError) as err:
                    await c.boom()
                assert err.value.code == -32603 and err.value.data is None
                assert "secret detail" not in str(err.value)
                with pytest.raises(aio.ServerError) as serr:
                    await c.custom()
                assert (serr.value.code, serr.value.message, serr.value.data) == (-32042, "custom", {"why": 1})
                with pytest.raises(aio.InvalidParams):
                    await c.add(1)
                with pytest.raises(aio.MethodNotFound) as nf:
                    await c.missing()
                assert nf.value.method == "missing"
                with pytest.raises(aio.InternalError):
                    await c.nan()
                assert await c.add(1, 1) == 2  # the connection survived all of that
            async with await aio.connect(*a2) as c:
                with pytest.raises(aio.InternalError) as derr:
                    await c.boom()
                assert derr.value.data["type"] == "ValueError"
                assert "secret detail" in derr.value.data["traceback"]

    run(main)


def test_many_concurrent_calls_are_pipelined_and_matched_by_id() -> None:
    async def main() -> None:
        async with serving(make_server()) as address, await aio.connect(*address, timeout=10) as c:
            # delays in reverse order: replies come back out of order and must still match
            calls = [c.sleep(0.001 * (50 - i), i) for i in range(50)]
            assert await asyncio.gather(*calls) == list(range(50))
            assert await asyncio.gather(*(c.add(i, i) for i in range(300))) == [2 * i for i in range(300)]

    run(main)


def test_a_slow_call_does_not_delay_a_fast_one() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        srv = make_server()

        @srv.register
        async def wait_gate() -> str:
            await gate.wait()
            return "open"

        async with serving(srv) as address, await aio.connect(*address, timeout=10) as c:
            slow = asyncio.create_task(c.wait_gate())
            assert await c.add(1, 2) == 3
            assert not slow.done()
            gate.set()
            assert await slow == "open"

    run(main)


def test_server_batches_run_members_concurrently_and_answer_once() -> None:
    async def main() -> None:
        srv = make_server()
        first, second = asyncio.Event(), asyncio.Event()

        @srv.register
        async def ping() -> str:  # can only finish if pong runs at the same time
            first.set()
            await second.wait()
            return "ping"

        @srv.register
        async def pong() -> str:
            await first.wait()
            second.set()
            return "pong"

        async with serving(srv) as address:
            raw = await RawConn.open(address)
            batch = [request("ping", id_=1), request("pong", id_=2), request("add", [1], id_=3), {"x": 1}]
            batch.append(request("add", [1, 2], id_=None))
            await raw.send(batch)
            reply = await raw.recv()
            assert isinstance(reply, list) and len(reply) == 4
            by_id = {item["id"]: item for item in reply}
            assert by_id[1]["result"] == "ping" and by_id[2]["result"] == "pong"
            assert by_id[3]["error"]["code"] == -32602
            assert by_id[None]["error"]["code"] == -32600
            # a batch of notifications only gets no reply at all
            await raw.send([request("add", [1, 2], id_=None)])
            await raw.send(request("add", [2, 2], id_=9))
            assert await raw.recv() == {"jsonrpc": "2.0", "id": 9, "result": 4}
            await raw.close()

    run(main)


def test_client_batch_mirrors_the_sync_batch_builder() -> None:
    async def main() -> None:
        srv = make_server()
        notes: list[str] = []
        srv.register_function(notes.append, name="note")
        async with serving(srv) as address, await aio.connect(*address, timeout=5) as c:
            async with c.batch() as b:
                r1 = b.add(1, 2)
                r2 = b.call("math.mul", 3, 4)
                r3 = b.math.mul(2, 2)
                b.notify("note", "x")
                bad = b.missing()
                assert len(b) == 5
                with pytest.raises(aio.RPCError, match="not been sent"):
                    r1.result()
            assert (r1.result(), r2.result(), r3.result()) == (3, 12, 4)
            with pytest.raises(aio.MethodNotFound):
                bad.result()
            assert bad.method == "missing"
            with pytest.raises(aio.RPCError, match="already sent"):
                b.add(1, 1)
            # an exception in the block sends nothing
            with pytest.raises(KeyError):
                async with c.batch() as b2:
                    lost = b2.add(5, 5)
                    raise KeyError("x")
            with pytest.raises(aio.RPCError, match="was not sent: its with block raised KeyError"):
                lost.result()
            # explicit send, empty batch
            b3 = c.batch()
            r = b3.add(2, 3)
            assert await b3.send() == [r] and r.result() == 5
            assert await c.batch().send() == []
            with pytest.raises(TypeError, match="async with"), c.batch():
                pass
            assert notes == ["x"]

    run(main)


def test_batch_members_unanswered_in_time_get_rpc_timeout() -> None:
    async def main() -> None:
        async with (
            serving(make_server()) as address,
            await aio.connect(*address) as c,
            c.with_timeout(0.3).batch() as b,
        ):
            fast = b.add(1, 1)
            slow = b.sleep(1.0)
        # the server answers a batch in one array, so the fast member times out too
        assert fast.method == "add"
        with pytest.raises(aio.RPCTimeout):
            slow.result()
        with pytest.raises(aio.RPCTimeout):
            fast.result()

    run(main)


def test_call_timeout_keeps_the_connection_and_drops_the_late_reply(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")

    def dropped() -> bool:
        return any(r.getMessage().startswith("dropping reply for unknown") for r in caplog.records)

    async def main() -> None:
        async with serving(make_server()) as address, await aio.connect(*address, timeout=0.2) as c:
            with pytest.raises(aio.RPCTimeout) as err:
                await c.sleep(0.6, "late")
            assert isinstance(err.value, TimeoutError)
            assert "sleep" in str(err.value)
            # The late reply arrives and is dropped: waited for (a fixed 0.6 s assumed it had come).
            await until(dropped)
            assert await c.with_timeout(WAIT).add(1, 2) == 3  # still usable (a call that must succeed: WAIT)
            assert c._link.pending == {}
            # with_timeout gives another timeout on the same connection
            assert await c.with_timeout(5).sleep(0.3, "ok") == "ok"
            assert c.with_timeout(None)._timeout is None and c._timeout == 0.2
            with pytest.raises(ValueError):
                c.with_timeout(0)

    run(main)


def test_asyncio_timeout_and_cancel_leave_the_connection_usable() -> None:
    async def main() -> None:
        async with serving(make_server()) as address, await aio.connect(*address) as c:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await c.sleep(0.5, "late")
            task = asyncio.create_task(c.sleep(0.5, "cancelled"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Both late replies arrive (0.5 s after their calls) and are dropped, with
            # their entries: waited for (a fixed 0.6 s assumed they were read by then).
            await until(lambda: c._link.pending == {})
            assert await c.sleep(0, "fresh") == "fresh"
            assert c._connected

    run(main)


def test_connection_loss_fails_every_pending_call() -> None:
    async def main() -> None:
        srv = make_server(shutdown_grace=0.1)
        started: list[int] = []

        @srv.register
        async def hold(i: int) -> int:
            started.append(i)
            await asyncio.sleep(5)
            return i

        async with serving(srv) as address:
            c = await aio.connect(*address)
            calls = [asyncio.create_task(c.hold(i)) for i in range(5)]
            # All five run before the shutdown (a fixed 0.1 s assumed so): one the server
            # had not read yet would get the -32000 "shutting down" error instead.
            await until(lambda: len(started) == 5)
            await srv.shutdown()  # grace 0.1 s: the calls are cancelled, the connection closed
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, aio.ConnectionLost) for r in results), results
            assert {r.method for r in results} == {"hold"}  # type: ignore[union-attr]
            assert not c._connected
            with pytest.raises(aio.ConnectionLost):
                await c.add(1, 2)
            with pytest.raises(aio.ConnectionLost):
                await c.notify("add", 1, 2)
            await c.close()
            await c.close()  # idempotent

    run(main)


def test_connect_errors() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        address = await srv.start("127.0.0.1", 0)
        await srv.shutdown()  # the port is now closed
        with pytest.raises(aio.ConnectionLost, match="cannot connect"):
            await aio.connect(*address)  # type: ignore[misc]
        with pytest.raises(ValueError):
            await aio.connect("127.0.0.1", 1, timeout=-1)
        with pytest.raises(ValueError):
            await aio.connect("127.0.0.1", 1, framing="auto")

    run(main)


def test_content_length_framing_is_detected_by_the_server() -> None:
    async def main() -> None:
        async with serving(make_server()) as address:
            async with await aio.connect(*address, framing="content-length") as c:
                assert await c.add(2, 3) == 5
                assert await asyncio.gather(*(c.add(i, 1) for i in range(20))) == list(range(1, 21))
            raw = await RawConn.open(address)
            body = b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}'
            await raw.send(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            header = await raw.reader.readuntil(b"\r\n\r\n")
            length = int(header.split(b":")[1].split(b"\r\n")[0])
            assert await raw.reader.readexactly(length) == b'{"jsonrpc":"2.0","id":1,"result":3}\n'[:length]
            await raw.close()

    run(main)


def test_unix_socket() -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rpc.sock")
            srv = make_server(unix_mode=0o600)
            assert await srv.start(path=path) == path
            assert srv.address == path
            assert os.stat(path).st_mode & 0o777 == 0o600
            try:
                async with await aio.connect(path=path) as c:
                    assert await c.add(1, 2) == 3
            finally:
                await srv.shutdown()
            assert not os.path.exists(path)
            assert srv.address is None

    run(main)


def test_tls() -> None:
    server_ctx, client_ctx = tls_contexts()

    async def main() -> None:
        async with serving(make_server(), ssl=server_ctx) as address:
            async with await aio.connect(*address, ssl=client_ctx, timeout=10) as c:
                assert await c.add(20, 22) == 42
                assert await asyncio.gather(*(c.add(i, 0) for i in range(10))) == list(range(10))
            with pytest.raises(aio.ConnectionLost, match="TLS"):
                await aio.connect(*address, ssl=ssl.create_default_context(), timeout=10)  # untrusted

    # asyncio's debug mode reports the server side of the failed handshake; nothing leaks.
    run(main, allow=("Error on transport creation for incoming connection",))


def test_client_repr_and_reserved_names() -> None:
    async def main() -> None:
        async with serving(make_server()) as address:
            c = await aio.connect(*address, timeout=5)
            assert "connected" in repr(c)
            assert repr(c.math.mul) == "<remote method 'math.mul'>"
            with pytest.raises(AttributeError):
                _ = c._private
            with pytest.raises(AttributeError):
                _ = c.math._private
            await c.close()
            assert "not connected" in repr(c)

    run(main)


async def start_fake_server(handler: object) -> asyncio.Server:
    """A raw asyncio server running ``handler(reader, writer)`` (closes the writer after)."""

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)  # type: ignore[operator]
        finally:
            writer.close()

    return await asyncio.start_server(wrapped, "127.0.0.1", 0)


def test_client_handles_replies_it_cannot_match() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        # not a response, a reply for an unknown id, then an error without id (a parse error)
        writer.write(b'{"hello": 1}\n{"jsonrpc":"2.0","id":999,"result":0}\n')
        writer.write(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n')
        await writer.drain()
        await reader.readline()
        await reader.readline()
        writer.write(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n')
        writer.write(b"not json at all\n")
        await writer.drain()
        await reader.read()

    async def main() -> None:
        server = await start_fake_server(answer)
        try:
            async with await aio.connect(*server.sockets[0].getsockname()[:2], timeout=0.5) as c:
                # with one call outstanding, an id-less error can only be its answer
                with pytest.raises(aio.ParseError):
                    await c.first()
                # with two outstanding it is ambiguous: logged and ignored, both time out
                results = await asyncio.gather(c.a(), c.b(), return_exceptions=True)
                assert all(isinstance(r, aio.RPCTimeout) for r in results), results
        finally:
            server.close()
            await server.wait_closed()

    run(main)


def test_client_waits_while_the_server_does_not_read_and_fails_on_close() -> None:
    stop = asyncio.Event

    async def main() -> None:
        closing = stop()

        async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await closing.wait()
            writer.transport.abort()

        server = await start_fake_server(never_read)
        try:
            c = await aio.connect(*server.sockets[0].getsockname()[:2])
            big = "x" * (8 * 2**20)
            calls = [asyncio.create_task(c.call("take", big)) for _ in range(4)]
            # Writing paused: waited for (a fixed 0.3 s assumed it had by then).
            await until(lambda: c._link._write_ready is not None and not c._link._write_ready.done())
            assert not any(call.done() for call in calls)
            closing.set()
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, aio.ConnectionLost) for r in results), results
            await c.close()
        finally:
            server.close()
            await server.wait_closed()

    run(main)


def test_an_async_callable_object_runs_via_the_pool_and_is_awaited() -> None:
    class Handler:
        async def __call__(self, x: int) -> int:
            await asyncio.sleep(0)
            return x * 10

    async def main() -> None:
        for inline in (False, True):
            srv = aio.RPCServer(run_sync_in_thread=not inline)
            srv.register_function(Handler(), name="h")
            async with serving(srv) as address, await aio.connect(*address) as c:
                assert await c.h(4) == 40

    run(main)


def test_cancelled_calls_without_reply_do_not_pile_up() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        srv = make_server()

        entered: list[None] = []

        @srv.register
        async def hang() -> str:
            entered.append(None)
            await gate.wait()
            return "late"

        async with serving(srv) as address, await aio.connect(*address, timeout=WAIT) as c:
            hanging = [asyncio.create_task(c.hang()) for _ in range(5)]
            await until(lambda: len(entered) == 5)  # all five sent and running (not a fixed 0.05 s)
            for task in hanging:
                task.cancel()
            await asyncio.gather(*hanging, return_exceptions=True)
            assert len(c._link.pending) == 5  # their replies have not come: entries kept so far
            # enough later calls trigger a sweep of entries whose caller gave up
            for _ in range(3):
                assert await asyncio.gather(*(c.add(i, 1) for i in range(400))) == list(range(1, 401))
            assert c._link.pending == {}
            gate.set()  # the late replies now arrive and are dropped
            assert await c.add(1, 1) == 2

    run(main)
