"""The README's "Quick start" and "Property tests" examples run as written.

Only the port changes: the examples use 5000, which another program (or a parallel
test run) may hold, so each run puts a free port in its place.
"""

from __future__ import annotations

import ast
import socket
import threading
import time
from typing import Any

import pytest
from _readme_blocks import python_blocks

from jsonrpc_mini import MethodNotFound, RPCClient, RPCServer
from jsonrpc_mini.testing import Resources

pytestmark = pytest.mark.timeout(60)


def section_blocks(title: str) -> list[str]:
    return python_blocks(f"\n## {title}\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def serving(namespace: dict[str, Any], within: float = 10.0) -> RPCServer:
    """The example's server, once its loop listens (waits at most ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        server = namespace.get("s")
        if isinstance(server, RPCServer) and server.address is not None:
            return server
        time.sleep(0.01)
    raise AssertionError("the Quick start server did not start listening")


def test_quick_start_server_and_client_run_as_written() -> None:
    server_block, client_block = section_blocks("Quick start")
    assert 's.loop("127.0.0.1", 5000)' in server_block
    assert 'c.connect("127.0.0.1", 5000)' in client_block
    port = str(free_port())
    before = Resources()
    served: dict[str, Any] = {}
    failures: list[BaseException] = []

    def run_server() -> None:
        try:
            exec(compile(server_block.replace("5000", port), "README#quick-start-server", "exec"), served)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    thread = threading.Thread(target=run_server, name="readme-quick-start")
    thread.start()
    try:
        server = serving(served)
        client: dict[str, Any] = {}
        exec(compile(client_block.replace("5000", port), "README#quick-start-client", "exec"), client)
        # The comment after the call says what it returns: hold the README to it.
        claimed = client_block.split("# ->", 1)[1].splitlines()[0].strip()
        assert client["res"] == ast.literal_eval(claimed)
        client["c"].close()
    finally:
        if "s" in served:
            served["s"].shutdown()
        thread.join(10)
    assert not thread.is_alive(), "s.loop() did not return after shutdown()"
    assert not failures, failures
    assert server.address is None  # shutdown() stopped the listener s.loop() ran
    before.assert_no_leaks()


def test_property_test_example_runs_as_written() -> None:
    (block,) = section_blocks("Property tests and fuzzing")
    namespace: dict[str, Any] = {}
    exec(compile(block, "README#property-tests", "exec"), namespace)
    namespace["test_echo_any_arguments"]()  # hypothesis runs its 25 examples
    # Leaving each loopback() stopped the server it started: a call now needs a new one.
    assert namespace["server"].address is None


def test_disconnect_is_a_remote_call_and_the_connection_stays_open() -> None:
    # README, Quick start: the old toy's c.disconnect() "is now a remote call like any
    # other name (against our server it raises MethodNotFound, and the connection
    # stays open)".
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=10) as c:
            with pytest.raises(MethodNotFound, match=r"^disconnect: \[-32601\] Method not found: 'disconnect'$"):
                c.disconnect()
            assert c.add(1, 2) == 3  # the same connection: nothing was closed
            assert server.connection_count == 1
    finally:
        server.shutdown()
