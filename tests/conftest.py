"""Fixtures shared by the test files in this folder and below."""

from __future__ import annotations

import os
import signal
import ssl
import tempfile
import threading
from collections.abc import Iterator

import pytest
from _aio_support import OneLoop
from _driver_helpers import tls_contexts

from jsonrpc_mini import RPCServer


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts for 127.0.0.1 and localhost, one pair per test file (skips without trustme)."""
    return tls_contexts()


@pytest.fixture
def unix_path() -> Iterator[str]:
    """A Unix socket path in a fresh short directory, removed with what is left in it.

    Short because tmp_path can exceed the ~107-byte limit of AF_UNIX paths.
    """
    directory = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")
    yield os.path.join(directory, "s.sock")
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


@pytest.fixture
def echo_server() -> Iterator[RPCServer]:
    """An RPCServer with ``echo(value)`` (returns ``value``), shut down afterwards."""
    srv = RPCServer()
    srv.register_function(lambda value: value, name="echo")
    yield srv
    srv.shutdown()


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """For a test that runs ``serve`` in this (the main) thread: its SIGTERM/SIGINT handlers are put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("signal handlers can only be installed from the main thread")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.fixture
def one_loop() -> Iterator[OneLoop]:
    """One event loop for every example of a hypothesis test (``_aio_support.OneLoop``).

    Function-scoped on purpose: the loop spans one test's examples, hence
    ``HealthCheck.function_scoped_fixture`` suppressed where it is used.
    """
    runner = OneLoop()
    try:
        yield runner
    finally:
        runner.close()
