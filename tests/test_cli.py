"""``python -m jsonrpc_mini demo | serve | call``: as subprocesses and in-process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, free_port, listening, serving, start_thread, wait_for, wait_line

import jsonrpc_mini.__main__ as cli_module
from jsonrpc_mini import RPCClient, RPCServer
from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(90)

API_MODULE = textwrap.dedent(
    """
    from os.path import join  # imported: must not be exposed by `serve MODULE`
    from jsonrpc_mini import RPCServer

    def add(a, b):
        return a + b

    def greet(name, punctuation="!"):
        return f"hello {name}{punctuation}"

    def _private():
        return "hidden"

    class Api:
        def mul(self, a, b):
            return a * b

        def _secret(self):
            return "hidden"

    api = Api()

    server = RPCServer()

    @server.register(name="math.neg")
    def neg(x):
        return -x
    """
)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


@pytest.fixture
def api_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"cli_api_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(API_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    yield name
    sys.modules.pop(name, None)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jsonrpc_mini", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


# -- as a user runs it ---------------------------------------------------------


def test_demo_prints_the_calls_and_their_results() -> None:
    done = run_cli("demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "server listening on 127.0.0.1:" in out
    assert "add(1, 2) -> 3" in out
    assert "测试项" in out and "'kw1': '1'" in out
    assert 'call("add", 0.5, 0.25) -> 0.75' in out
    assert "length -> 5000" in out
    assert "batch add(2, 3), add(10, 20) -> 5, 30" in out
    assert "missing() -> MethodNotFound" in out
    assert out.rstrip().endswith("demo finished")


@pytest.mark.parametrize("target", ["{m}:api", "{m}:server", "{m}"])
def test_serve_and_call_end_to_end(api_module: str, target: str) -> None:
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "jsonrpc_mini", "serve", target.format(m=api_module), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        wait_for(lambda: listening(port) or serve.poll() is not None, "the server to listen", timeout=30)
        assert serve.poll() is None, serve.communicate()[1]
        address = f"127.0.0.1:{port}"
        if target == "{m}:api":
            done = run_cli("call", address, "mul", "6", "7")
            assert (done.returncode, done.stdout.strip()) == (0, "42"), done.stderr
            missing = run_cli("call", address, "_secret")
            assert missing.returncode == 1 and "-32601" in missing.stderr and "_secret" in missing.stderr
        elif target == "{m}:server":
            done = run_cli("call", address, "math.neg", "5")
            assert (done.returncode, done.stdout.strip()) == (0, "-5"), done.stderr
        else:
            done = run_cli("call", address, "greet", "测试项", "punctuation=?")
            assert (done.returncode, json.loads(done.stdout)) == (0, "hello 测试项?"), done.stderr
            done = run_cli("call", address, "add", "[1]", '[{"a": 2}]')
            assert json.loads(done.stdout) == [1, {"a": 2}], done.stderr
            for hidden in ("join", "_private", "RPCServer", "api"):
                refused = run_cli("call", address, hidden)
                assert refused.returncode == 1 and "-32601" in refused.stderr, (hidden, refused.stdout)
            notified = run_cli("call", "--notify", address, "add", "1", "2")
            assert (notified.returncode, notified.stdout) == (0, "")
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            _out, err = serve.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.communicate()
            raise AssertionError("serve did not exit on SIGTERM") from None
    assert serve.returncode == 0, err
    assert f"serving on 127.0.0.1:{port}" in err


@pytest.mark.parametrize("command", [[], ["demo"], ["serve"], ["call"]])
def test_help(command: list[str]) -> None:
    done = run_cli(*command, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m jsonrpc_mini")
    words = {(): ["demo", "serve", "call"], ("demo",): ["--port"], ("serve",): ["MODULE", "--host", "--port"]}
    for word in words.get(tuple(command), ["HOST:PORT", "METHOD", "--timeout", "--notify"]):
        assert word in done.stdout


def test_no_command_is_a_usage_error() -> None:
    done = run_cli()
    assert done.returncode == 2 and "usage:" in done.stderr


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1", "127.0.0.1:http", ":80"])
def test_call_with_a_bad_address(address: str) -> None:
    done = run_cli("call", address, "add", "1", "2")
    assert done.returncode == 2
    assert "HOST:PORT" in done.stderr


def test_call_an_unreachable_server() -> None:
    done = run_cli("call", f"127.0.0.1:{free_port()}", "add", "1", "2", "--timeout", "5")
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "connect" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("port", ["99999", "0", "65536"])
def test_call_with_a_port_out_of_range(port: str) -> None:
    done = run_cli("call", f"127.0.0.1:{port}", "add", "1", "2")
    assert done.returncode == 2
    assert f"port must be 1-65535, not {port}" in done.stderr and "Traceback" not in done.stderr


def test_serve_on_port_0_says_which_port_it_bound(api_module: str) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "jsonrpc_mini", "serve", api_module, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        assert server.stderr is not None
        lines = [server.stderr.readline() for _ in range(2)]  # "registered: ...", "serving on ..."
        assert lines[1].startswith("serving on 127.0.0.1:"), lines
        port = int(lines[1].split(":")[1].split()[0])
        assert port != 0
        with RPCClient("127.0.0.1", port, timeout=WAIT) as client:
            assert client.add(2, 3) == 5
        server.send_signal(signal.SIGINT)
        assert server.wait(WAIT) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(WAIT)
        if server.stderr is not None:
            server.stderr.close()


# -- in-process (same code paths, measured by coverage) ---------------------------


def test_main_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "add(1, 2) -> 3" in out and "demo finished" in out


def test_main_call_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    s = RPCServer()
    s.register_function(lambda *a, **k: {"a": list(a), "k": k}, name="echo")
    s.register_function(lambda: 1 / 0, name="boom")
    with serving(s) as (host, port):
        assert main(["call", f"{host}:{port}", "echo", "1", "x", "null", "k=[true]", "not-a-key=1"]) == 0
        assert json.loads(capsys.readouterr().out) == {"a": [1, "x", None, "not-a-key=1"], "k": {"k": [True]}}
        assert main(["call", f"[{host}]:{port}", "echo"]) == 0  # brackets are allowed around the host
        capsys.readouterr()
        # Only JSON is JSON: NaN and Infinity are words (strings); a number no float holds is an error.
        assert main(["call", f"{host}:{port}", "echo", "NaN", "Infinity", "[1, 2.5]"]) == 0
        assert json.loads(capsys.readouterr().out) == {"a": ["NaN", "Infinity", [1, 2.5]], "k": {}}
        assert main(["call", f"{host}:{port}", "echo", "x=1e400"]) == 2
        assert capsys.readouterr().err == "error: argument 'x=1e400': 1e400 is too large for a float\n"
        capsys.readouterr()
        assert main(["call", f"{host}:{port}", "boom"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: boom: [-32603]")


@pytest.mark.usefixtures("signal_handlers")
def test_main_serve_in_process_stops_on_sigterm(api_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    results: list[Any] = []

    def client() -> None:
        try:
            wait_for(lambda: listening(port), "serve to listen")
            with RPCClient("127.0.0.1", port, timeout=WAIT) as c:
                results.append(c.add(2, 3))
                results.append(c.greet("x"))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = start_thread(client)
    assert main(["serve", api_module, "--port", str(port)]) == 0
    thread.join(WAIT)
    assert results == [5, "hello x!"]
    err = capsys.readouterr().err
    assert "registered: add, greet" in err and f"serving on 127.0.0.1:{port}" in err


def test_serve_reports_bad_targets_and_busy_ports(api_module: str) -> None:
    missing = run_cli("serve", "no_such_module_xyz")
    assert missing.returncode == 2 and "no_such_module_xyz" in missing.stderr
    assert "Traceback" not in missing.stderr
    no_attr = run_cli("serve", f"{api_module}:nothing_here")
    assert no_attr.returncode == 2 and "nothing_here" in no_attr.stderr
    s = RPCServer()
    with serving(s) as (_host, port):
        busy = run_cli("serve", api_module, "--port", str(port))
    assert busy.returncode == 1 and str(port) in busy.stderr
    assert "Traceback" not in busy.stderr


EXPORTING_MODULE = textwrap.dedent(
    """
    from os.path import join
    __all__ = ["join", "visible"]

    def visible():
        return "yes"

    def not_listed():
        return "no"
    """
)


def test_main_serve_errors_in_process(
    api_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    assert main(["serve", "no_such_module_xyz"]) == 2
    assert "cannot load 'no_such_module_xyz'" in capsys.readouterr().err
    assert main(["serve", f"{api_module}:missing_attr"]) == 2
    assert "missing_attr" in capsys.readouterr().err

    # __all__ decides what a module exposes, imported names included when listed
    (tmp_path / "cli_exporting.py").write_text(EXPORTING_MODULE, encoding="utf-8")
    monkeypatch.delitem(sys.modules, "cli_exporting", raising=False)
    s = RPCServer()
    with serving(s) as (_host, port):
        assert main(["serve", "cli_exporting", "--port", str(port)]) == 1  # the port is taken
    err = capsys.readouterr().err
    assert "registered: join, visible\n" in err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    # the signal handlers of the embedding program are restored
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_main_call_errors_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "localhost", "add"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["call", f"127.0.0.1:{free_port()}", "add", "--timeout", "5"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot connect")
    noted = threading.Event()
    s = RPCServer()
    s.register_function(lambda *a: noted.set(), name="note")
    with serving(s) as (host, port):
        assert main(["call", "--notify", f"{host}:{port}", "note", "1"]) == 0
        assert noted.wait(WAIT)
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_main_serve_unix_socket_in_process(api_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tempfile.mkdtemp(prefix="jrpc", dir="/tmp")
    path = os.path.join(directory, "cli.sock")
    results: list[Any] = []

    def client() -> None:
        try:
            # The file appears only once the socket listens (README), so a client that
            # connects as soon as it sees the file is never refused.
            wait_for(lambda: os.path.exists(path), "the socket file")
            with RPCClient(path=path, timeout=WAIT) as c:
                results.append(c.mul(6, 7))
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C stops it too

    thread = start_thread(client)
    try:
        assert main(["serve", f"{api_module}:api", "--path", path]) == 0
    finally:
        thread.join(WAIT)
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)
    assert results == [42]
    assert f"serving on {path}" in capsys.readouterr().err


SLOW_MODULE = textwrap.dedent(
    """
    import threading

    started = threading.Event()
    release = threading.Event()
    finished = []


    def slow():
        started.set()
        release.wait(10)
        finished.append("slow")
        return "done"
    """
)


def _serve_waits_for_its_shutdown(line: int) -> bool:
    """Whether the main thread's ``serve`` waits at ``line`` for its shutdown thread (which waits for the calls)."""
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None and frame.f_code is not cli_module._serve.__code__:
        frame = frame.f_back
    return frame is not None and frame.f_lineno == line


@pytest.mark.usefixtures("signal_handlers")
def test_serve_lets_a_call_in_flight_finish_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # SIGTERM while a call runs: serve returns only once that call has finished (its
    # reply sent). Before, loop() returned as shutdown() began and the process
    # exited with the call cut off.
    name = f"cli_slow_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(SLOW_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    port = free_port()
    results: list[Any] = []
    returned = threading.Event()
    joining = wait_line("thread.join(", cli_module._serve)

    def client() -> None:
        try:
            wait_for(lambda: listening(port), "serve to listen")
            with RPCClient("127.0.0.1", port, timeout=WAIT) as c:
                results.append(c.slow())
        except Exception as exc:  # recorded for the test
            results.append(exc)

    def stop_mid_call() -> None:
        try:
            # Listening: the module is loaded whole (it is put in sys.modules before it
            # has run) and serve's signal handlers are in place.
            wait_for(lambda: listening(port), "serve to listen")
            module = sys.modules[name]
            assert module.started.wait(WAIT)
            os.kill(os.getpid(), signal.SIGTERM)
            # The call runs on after the signal: serve must wait for it (not return, as it did).
            wait_for(lambda: returned.is_set() or _serve_waits_for_its_shutdown(joining), "serve to wait for the call")
            module.release.set()
        except BaseException:
            os.kill(os.getpid(), signal.SIGTERM)  # never leave serve running
            raise

    calling = start_thread(client)
    stopping = start_thread(stop_mid_call)
    try:
        code = main(["serve", name, "--port", str(port)])
        finished = list(sys.modules[name].finished)  # (before the call may be let go: see stop_mid_call)
        assert code == 0
        assert finished == ["slow"], "serve returned before the call in flight finished"
    finally:
        returned.set()
        sys.modules[name].release.set()
        stopping.join(WAIT)
        calling.join(WAIT)
        sys.modules.pop(name, None)
    assert results == ["done"]
    capsys.readouterr()
