"""The pytest plugin, run as a user would: a separate pytest process on a test file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
from _readme_blocks import python_blocks

from jsonrpc_mini.testing import Resources

pytestmark = pytest.mark.timeout(120)

USER_TESTS = """
import socket
import threading

import pytest

from jsonrpc_mini import ConnectionLost, RPCServer
from jsonrpc_mini.testing import FaultPlan, LoopbackServer

SEEN = {}


def make_server():
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    server.register_function(lambda v: v, name="echo")
    return server


def test_seed(jsonrpc_seed):
    assert jsonrpc_seed == 1234


def test_no_marker_means_no_faults(jsonrpc_faults):
    assert jsonrpc_faults == FaultPlan(seed=1234)
    assert not jsonrpc_faults.active


@pytest.mark.jsonrpc_faults(max_chunk=1, awkward_splits=True)
def test_marker_plan(jsonrpc_faults, jsonrpc_loopback):
    assert jsonrpc_faults == FaultPlan(seed=1234, max_chunk=1, awkward_splits=True)
    client = jsonrpc_loopback(make_server())
    assert client.echo("é" * 500) == "é" * 500


@pytest.mark.jsonrpc_faults(reset_after=10)
def test_marker_reaches_loopback(jsonrpc_loopback):
    # (a reset, whose error names the plan; a close reads as the server's EOF, as on a socket)
    client = jsonrpc_loopback(make_server())
    with pytest.raises(ConnectionLost, match="seed=1234"):
        client.add(1, 2)


@pytest.mark.jsonrpc_faults(disconnect_after=10)
def test_explicit_faults_override_the_marker(jsonrpc_loopback):
    assert jsonrpc_loopback(make_server(), faults=None).add(1, 2) == 3


@pytest.mark.jsonrpc_faults(seed=5, max_chunk=2)
def test_server_factory(jsonrpc_server, jsonrpc_faults):
    assert jsonrpc_faults.seed == 5
    server = make_server()
    srv = jsonrpc_server(server)
    assert isinstance(srv, LoopbackServer)
    assert srv.faults == jsonrpc_faults
    assert srv.client().add(2, 3) == 5
    SEEN["server"] = server


def test_server_factory_cleaned_up():
    assert SEEN["server"].address is None
    assert not [t for t in threading.enumerate() if t.name.startswith("jsonrpc_mini")]


def test_fake_socket_factory(jsonrpc_fake_socket):
    sock = jsonrpc_fake_socket([b"abc"])
    assert sock.recv(10) == b"abc"


def test_no_leaks_fixture_passes_when_clean(jsonrpc_no_leaks, jsonrpc_loopback):
    assert jsonrpc_loopback(make_server()).add(1, 1) == 2


@pytest.mark.jsonrpc_faults(max_chunk=3)
def test_failure_shows_the_seed(jsonrpc_loopback):
    assert jsonrpc_loopback(make_server()).add(1, 2) == 4


def test_no_leaks_listed_after_the_kits(jsonrpc_server, jsonrpc_loopback, jsonrpc_fake_socket, jsonrpc_no_leaks):
    server = make_server()
    assert jsonrpc_server(server).client().add(1, 1) == 2
    assert jsonrpc_loopback(server).add(1, 1) == 2
    jsonrpc_fake_socket([b"x"])


def test_failure_with_the_seed_only(jsonrpc_seed):
    assert jsonrpc_seed == 0


@pytest.mark.jsonrpc_faults(max_chunk=3)
def test_failure_with_a_plan_given_as_faults(jsonrpc_loopback):
    client = jsonrpc_loopback(make_server(), faults=FaultPlan(seed=99, max_chunk=5))
    assert client.add(1, 2) == 4


@pytest.mark.jsonrpc_faults(max_chunks=2)
def test_marker_with_a_typo(jsonrpc_loopback):
    pass


def test_kit_given_a_dict(jsonrpc_loopback):
    jsonrpc_loopback(make_server(), faults={"max_chunk": 1})


def test_server_kit_given_no_server(jsonrpc_server):
    jsonrpc_server(object())


KEPT = []


def test_a_leak(jsonrpc_no_leaks):
    KEPT.append(socket.socket())


@pytest.mark.jsonrpc_faults(max_chunk=1)
def test_marker_without_a_kit_fixture():
    from jsonrpc_mini.testing import loopback

    with loopback(make_server()) as client:  # the marker's plan does not reach it
        assert client.add(1, 2) == 3
"""


def _report_of(run, name):
    """The lines of ``name``'s failure or error report in a ``-v`` run's output."""
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("_") and f" {name} " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("___", "===")))
    return "\n".join(lines[start:end])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "test_user.py"
    path.write_text(textwrap.dedent(USER_TESTS))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env.pop("JSONRPC_SEED", None)
    before = Resources()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-o",
            "addopts=",
            "-p",
            "no:xdist",
            "--jsonrpc-seed",
            "1234",
            str(path),
        ],
        cwd=path.parent,
        check=False,
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
    )
    before.assert_no_leaks()
    return proc


def test_header_prints_the_seed(run):
    assert "jsonrpc_mini: --jsonrpc-seed=1234" in run.stdout


@pytest.mark.parametrize(
    "name",
    [
        "test_seed",
        "test_no_marker_means_no_faults",
        "test_marker_plan",
        "test_marker_reaches_loopback",
        "test_explicit_faults_override_the_marker",
        "test_server_factory",
        "test_server_factory_cleaned_up",
        "test_fake_socket_factory",
        "test_no_leaks_fixture_passes_when_clean",
        # used to fail at teardown: the kits, torn down after jsonrpc_no_leaks, were its leaks
        "test_no_leaks_listed_after_the_kits",
    ],
)
def test_fixtures_and_marker_work(run, name):
    assert f"test_user.py::{name} PASSED" in run.stdout, run.stdout + run.stderr
    assert f"test_user.py::{name} ERROR" not in run.stdout, run.stdout  # nor at teardown


def test_failure_report_names_seed_and_plan(run):
    assert "test_user.py::test_failure_shows_the_seed FAILED" in run.stdout
    assert "jsonrpc_mini" in run.stdout
    assert "fault plan: FaultPlan(seed=1234, max_chunk=3)" in run.stdout
    assert "replay with: pytest --jsonrpc-seed=1234" in run.stdout
    assert run.returncode == 1


def test_failure_report_of_a_test_that_used_the_seed_only(run):
    # used to have no jsonrpc_mini section: the replay command was shown only with a plan
    report = _report_of(run, "test_failure_with_the_seed_only")
    assert "replay with: pytest --jsonrpc-seed=1234 test_user.py::test_failure_with_the_seed_only" in report
    assert "fault plan" not in report


def test_failure_report_names_a_plan_given_as_faults(run):
    # used to name only the marker's plan, which the test's client did not use
    report = _report_of(run, "test_failure_with_a_plan_given_as_faults")
    assert "fault plan: FaultPlan(seed=1234, max_chunk=3)" in report
    assert "fault plan given as faults=: FaultPlan(seed=99, max_chunk=5)" in report


def test_a_bad_marker_is_named_without_the_plugin_s_code(run):
    # used to be FaultPlan's bare TypeError under the source of the plugin's fixture
    report = _report_of(run, "test_marker_with_a_typo")
    assert "TypeError: @pytest.mark.jsonrpc_faults(max_chunks=2): " in report
    assert "unexpected keyword argument 'max_chunks'" in report
    assert "def jsonrpc_faults" not in report
    assert "replay with" not in report  # no plan was made


def test_a_marker_that_reaches_no_fixture_is_warned_about(run):
    # used to pass silently: its author believed the test ran under the plan
    assert "test_user.py::test_marker_without_a_kit_fixture PASSED" in run.stdout
    warned = "PytestWarning: @pytest.mark.jsonrpc_faults on {} applied to nothing"
    assert warned.format("test_marker_without_a_kit_fixture") in run.stdout
    assert warned.format("test_marker_plan") not in run.stdout  # the fixtures took its plan
    assert "applied to nothing" not in _report_of(run, "test_marker_with_a_typo")  # an error says it


def test_a_leak_is_reported_without_the_kit_s_code(run):
    # used to show the fixture's and Resources.assert_no_leaks' source above the verdict
    report = _report_of(run, "test_a_leak")
    assert "AssertionError: left behind: fd " in report
    assert "(TCP 0.0.0.0:0, not connected)" in report
    assert "def jsonrpc_no_leaks" not in report
    assert "def assert_no_leaks" not in report


def test_a_kit_usage_error_shows_the_user_s_call_not_the_check(run):
    report = _report_of(run, "test_kit_given_a_dict")
    assert "TypeError: loopback() takes a FaultPlan (or None) as faults, not dict" in report
    assert "def check_kit_args" not in report
    assert "def make" not in report
    assert "contextlib.py" not in report and "_loopback.py" not in report
    report = _report_of(run, "test_server_kit_given_no_server")
    expected = "TypeError: LoopbackServer() takes a jsonrpc_mini.RPCServer or a jsonrpc_mini.aio.RPCServer, not object"
    assert expected in report
    assert "_proxy.py" not in report and "def check_kit_args" not in report
    assert "given as faults=" not in report  # not a plan


SEED_USER_TESTS = """
def test_without_the_seed():
    pass


def test_with_the_seed(jsonrpc_seed):
    assert jsonrpc_seed == 7
"""


def _run_user_project(cwd, seed, *args):
    """pytest in ``cwd`` (a user's project), with JSONRPC_SEED ``seed`` (None: unset) and ``args``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "JSONRPC_SEED")}
    if seed is not None:
        env["JSONRPC_SEED"] = seed
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "addopts=", "-p", "no:xdist", *args],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
    )


def _run_seed_project(tmp_path, env_seed, *args):
    path = tmp_path / "test_seed_user.py"
    path.write_text(SEED_USER_TESTS)
    return _run_user_project(tmp_path, env_seed, *args)


@pytest.mark.parametrize("env_seed", ["abc", "1.5"])
def test_a_bad_jsonrpc_seed_env_fails_only_the_tests_that_use_the_seed(tmp_path, env_seed):
    # Used to be a ValueError traceback at start-up of every pytest run in the environment.
    run = _run_seed_project(tmp_path, env_seed)
    out = run.stdout + run.stderr
    message = f"JSONRPC_SEED must be an integer, not {env_seed!r}"
    assert f"jsonrpc_mini: {message}" in run.stdout  # the header
    assert "test_seed_user.py::test_without_the_seed PASSED" in run.stdout, out
    assert "test_seed_user.py::test_with_the_seed ERROR" in run.stdout, out
    assert f"UsageError: {message}" in run.stdout, out
    assert run.returncode == 1


def test_without_the_option_or_jsonrpc_seed_env_the_seed_is_0(tmp_path):
    # README: "default: $JSONRPC_SEED, else 0"; the replay line of a failure depends on it.
    (tmp_path / "test_seed_user.py").write_text("def test_seed(jsonrpc_seed):\n    assert jsonrpc_seed == 0\n")
    run = _run_user_project(tmp_path, None)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "jsonrpc_mini: --jsonrpc-seed=0" in run.stdout


@pytest.mark.parametrize(("env_seed", "args"), [(" 7 ", ()), ("abc", ("--jsonrpc-seed", "7"))])
def test_jsonrpc_seed_env_is_read_unless_the_option_is_given(tmp_path, env_seed, args):
    run = _run_seed_project(tmp_path, env_seed, *args)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "jsonrpc_mini: --jsonrpc-seed=7" in run.stdout


def test_marker_is_registered():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "@pytest.mark.jsonrpc_faults" in proc.stdout


def test_the_readme_s_plugin_examples_pass_under_pytest(tmp_path):
    # README's plugin examples were not run as written (USER_TESTS runs the same
    # fixtures); the asyncio one is new: users of aio.RPCServer had no example.
    blocks = [b for b in python_blocks("## Test kit") if "import pytest" in b]
    assert any("aio_loopback(" in block for block in blocks), "no asyncio example for the plugin"
    names = []
    for index, block in enumerate(blocks):
        (tmp_path / f"test_readme_{index}.py").write_text(block)
        names += re.findall(r"^def (test_\w+)", block, re.M)
    run = _run_user_project(tmp_path, None)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(names) >= 3 and all(f"::{name} PASSED" in run.stdout for name in names), run.stdout
