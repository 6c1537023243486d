"""``python -m jsonrpc_mini``: what ``serve`` takes as its target; Ctrl-C and stdout on any command.

``serve MODULE:FUNCTION`` serves that function under its name (it used to expose the
function's public methods: none, so nothing was served); ``serve MODULE:CLASS`` is a
usage error (its methods would take the caller's first argument as self). A target without a module
name (``""``, ``":x"``, ``".x"``) is a usage error, not a ``ValueError`` /
``TypeError`` traceback from ``importlib``. Ctrl-C during ``call``, ``demo`` or
``check`` exits 130 without a traceback. Started with stdout closed (``>&-``) a command
runs as usual (it ended in an AttributeError traceback from the final flush); a stdout
that cannot be written (a full disk) is one ``error:`` line and exit 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, free_port, listening, serving, start_thread, wait_for

from jsonrpc_mini import MethodNotFound, RPCClient, RPCServer
from jsonrpc_mini.__main__ import main, run_command

pytestmark = pytest.mark.timeout(90)

TARGET_MODULE = textwrap.dedent(
    """
    def add(a, b):
        return a + b

    def other():
        return "not served"

    twice = lambda x: 2 * x

    class Calculator:
        def add(self, a, b):
            return a + b
    """
)


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with LeakCheck():
        yield


@pytest.fixture
def target_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_target_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(TARGET_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.mark.usefixtures("signal_handlers")
def test_serve_module_function_serves_that_function(target_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    results: list[Any] = []

    def client() -> None:
        try:
            wait_for(lambda: listening(port), "serve to listen")
            with RPCClient("127.0.0.1", port, timeout=WAIT) as c:
                results.append(c.add(2, 3))
                try:
                    c.other()
                except MethodNotFound:
                    results.append("MethodNotFound")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = start_thread(client)
    assert main(["serve", f"{target_module}:add", "--port", str(port)]) == 0
    thread.join(WAIT)
    assert results == [5, "MethodNotFound"]
    assert "registered: add\n" in capsys.readouterr().err


def test_serve_module_lambda_is_served_under_its_attribute_name(
    target_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(RPCServer()) as (_host, port):  # a port in use: registration is shown, nothing served
        assert main(["serve", f"{target_module}:twice", "--port", str(port)]) == 1
    assert capsys.readouterr().err.startswith("registered: twice\n")


@pytest.mark.parametrize("target", ["", ":add", ".mod", ".mod:add"])
def test_serve_refuses_a_target_without_a_module_name(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", target, "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot load {target!r}: ")
    assert "MODULE" in err


def test_serve_refuses_a_class_whose_methods_would_take_self_from_the_caller(
    target_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Served as an object, `call add 1 2` would have run add(self=1, a=2) and failed on b.
    assert main(["serve", f"{target_module}:Calculator", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: '{target_module}:Calculator' is a class, whose methods need an instance: serve an instance"
        " the module makes (e.g. `calc = Calculator()`, then MODULE:calc)\n"
    )


def _status(command: Any) -> int | None:
    try:
        status: int = run_command(command)
    except KeyboardInterrupt:  # (left to propagate: it would end the whole test run)
        return None
    return status


def test_ctrl_c_ends_a_command_with_130() -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert _status(interrupted) == 130


@pytest.mark.usefixtures("signal_handlers")
def test_ctrl_c_during_call_exits_130_without_output(capsys: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C as Python sets it up at a terminal: a process started in the background by
    # a non-interactive shell (a CI script's `cmd &`) inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started, release = threading.Event(), threading.Event()

    def held() -> str:
        started.set()
        release.wait(WAIT)
        return "late"

    s = RPCServer()
    s.register_function(held)

    def ctrl_c() -> None:
        assert started.wait(WAIT)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: KeyboardInterrupt in the main thread, in the call

    with serving(s) as (host, port):
        thread = start_thread(ctrl_c)
        try:
            assert _status(lambda: main(["call", f"{host}:{port}", "held", "--timeout", str(WAIT)])) == 130
        finally:
            release.set()
            thread.join(WAIT)
    assert capsys.readouterr() == ("", "")


def _demo(command: list[str], **popen: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, stderr=subprocess.PIPE, text=True, timeout=60, **popen)


@pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="closes stdout with the shell's >&-")
def test_demo_with_stdout_closed_runs_and_exits_0() -> None:
    done = _demo(["/bin/sh", "-c", 'exec "$0" -m jsonrpc_mini demo >&-', sys.executable])
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_demo_to_a_full_disk_says_so_without_a_traceback() -> None:
    with open("/dev/full", "w") as full:
        done = _demo([sys.executable, "-m", "jsonrpc_mini", "demo"], stdout=full)
    assert done.returncode == 1
    assert done.stderr == "error: cannot write the output: [Errno 28] No space left on device\n"
