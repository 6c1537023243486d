"""The classic tutorial programs, unchanged but for the import line, on real sockets."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, free_port, serving, start_thread, wait_for

from jsonrpc_mini import RPCClient, RPCServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def test(*args: Any, **kwargs: Any) -> Any:
    """The tutorial's handler: returns what it was given."""
    return {"args": list(args), "kwargs": kwargs}


test.__test__ = False  # type: ignore[attr-defined]  # a handler, not a pytest test


def test_tutorial_programs_exactly() -> None:
    port = free_port()

    # --- the server program (loop() blocks, so it runs in a thread) ---
    s = RPCServer()
    s.register_function(test)
    server_thread = start_thread(s.loop, "127.0.0.1", port)
    wait_for(lambda: s.address is not None, "the server to listen")

    # --- the client program ---
    c = RPCClient()
    c.connect("127.0.0.1", port)
    res = c.test("测试项", kw1="1")
    assert res == {"args": ["测试项"], "kwargs": {"kw1": "1"}}
    assert isinstance(res, dict)  # a Python value, not JSON text
    c.close()

    s.shutdown()
    server_thread.join(WAIT)
    assert not server_thread.is_alive(), "loop() did not return after shutdown()"


def test_many_calls_on_one_connection() -> None:
    s = RPCServer()
    s.register_function(test)
    with serving(s) as (host, port):
        c = RPCClient()
        c.connect(host, port)
        for i in range(300):
            assert c.test(i, "测试项", kw1=str(i)) == {"args": [i, "测试项"], "kwargs": {"kw1": str(i)}}
        c.close()


def test_many_clients_at_once() -> None:
    s = RPCServer()
    s.register_function(test)
    clients = 20
    barrier = threading.Barrier(clients, timeout=WAIT)
    failures: list[str] = []
    done = []

    def one_client(n: int) -> None:
        try:
            c = RPCClient()
            c.connect(host, port)
            barrier.wait()  # all connected at the same time
            for i in range(25):
                got = c.test(n, i, who=f"client-{n}")
                if got != {"args": [n, i], "kwargs": {"who": f"client-{n}"}}:
                    failures.append(f"client {n} call {i}: {got!r}")
            c.close()
            done.append(n)
        except Exception as exc:
            failures.append(f"client {n}: {exc!r}")

    with serving(s) as (host, port):
        threads = [start_thread(one_client, n) for n in range(clients)]
        for thread in threads:
            thread.join(WAIT * 3)
    assert not failures
    assert sorted(done) == list(range(clients))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("x" * 2**20, id="1MiB-ascii"),
        pytest.param("测试项𝄞😀\u00e9" * (2**20 // 7), id="1MiB-unicode-astral"),
        pytest.param('\x00\x1f"\\\u2028\u2029\ud7ff\ue000' * 200, id="escapes"),
        pytest.param({"k" * 2000: ["v" * 1500] * 3, "nested": [[["\U0001d518\U0001d52b" * 500]]]}, id="big-object"),
    ],
)
def test_large_and_unicode_payloads_round_trip(payload: Any) -> None:
    s = RPCServer()
    s.register_function(test)
    with serving(s) as (host, port):
        c = RPCClient()
        c.connect(host, port)
        assert c.test(payload, kw1=payload) == {"args": [payload], "kwargs": {"kw1": payload}}
        # the connection is still in step after a large message
        assert c.test("after") == {"args": ["after"], "kwargs": {}}
        c.close()


def test_unicode_method_and_keyword_names() -> None:
    s = RPCServer()
    s.register_function(test, name="测试")
    with serving(s) as (host, port):
        c = RPCClient()
        c.connect(host, port)
        assert c.call("测试", 1, ключ="значение") == {"args": [1], "kwargs": {"ключ": "значение"}}
        c.close()
