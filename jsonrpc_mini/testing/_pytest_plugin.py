"""pytest plugin for jsonrpc_mini, registered by the ``pytest11`` entry point.

Fixtures: ``jsonrpc_seed``, ``jsonrpc_faults`` (the test's :class:`FaultPlan`),
``jsonrpc_loopback`` (factory: in-memory client for a server), ``jsonrpc_server``
(factory: :class:`LoopbackServer`), ``jsonrpc_fake_socket`` (factory) and
``jsonrpc_no_leaks``; the factories' types, for a test's hints, are
``jsonrpc_mini.testing.LoopbackFactory``, ``LoopbackServerFactory`` and
``FakeSocketFactory``. Marker: ``@pytest.mark.jsonrpc_faults(max_chunk=1, ...)``
applies a fault plan to the test's loopback clients and servers. Option:
``--jsonrpc-seed N`` (or ``JSONRPC_SEED``) replays a run; the seed is in the report
header and in the report of every failing test that used a fixture. A
``JSONRPC_SEED`` that is not an integer fails only the tests that use the seed
(with a message saying so), not every pytest run in the environment.

Example::

    import pytest
    from jsonrpc_mini import RPCServer

    @pytest.mark.jsonrpc_faults(max_chunk=1, latency=0.001)
    def test_add(jsonrpc_loopback):
        server = RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        assert jsonrpc_loopback(server).add(1, 2) == 3
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

# The library is imported inside the fixtures, not here: pytest loads this plugin
# before coverage measurement starts, and importing the package now would hide
# every module-level line of it from the coverage report.
if TYPE_CHECKING:
    from types import EllipsisType

    from .._aio_server import RPCServer as AioRPCServer
    from .._client import RPCClient
    from .._server import RPCServer
    from ._fake_socket import FakeSocket
    from ._fixture_types import FakeSocketFactory, LoopbackFactory, LoopbackServerFactory
    from ._leaks import Resources
    from ._per_connection import KitFaults
    from ._plan import FaultPlan
    from ._proxy import LoopbackServer

DEFAULT_SEED = 0
MARKER = "jsonrpc_faults"
_PLAN_KEY = pytest.StashKey["FaultPlan"]()
_GIVEN_PLANS_KEY = pytest.StashKey[list["FaultPlan"]]()  # plans passed as faults= to the factories
_SEED_USED_KEY = pytest.StashKey[int]()
_MARKER_READ_KEY = pytest.StashKey[bool]()  # the jsonrpc_faults fixture ran, a plan made or not
_KITS_KEY = pytest.StashKey[list[contextlib.ExitStack]]()  # what the kit fixtures close at teardown
_SEED_ERROR_KEY = pytest.StashKey[str]()
_DEFAULT_TIMEOUT = 10.0  # jsonrpc_mini.testing._loopback.DEFAULT_TIMEOUT


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--jsonrpc-seed``: the seed every fault plan of the run derives from."""
    group = parser.getgroup("jsonrpc_mini")
    group.addoption(
        "--jsonrpc-seed",
        type=int,
        default=None,  # JSONRPC_SEED, else DEFAULT_SEED: read in pytest_configure
        help="seed for jsonrpc_mini fault plans (replay a failing run with the seed it printed); "
        "default: $JSONRPC_SEED, else 0",
    )


def _seed_from_env(config: pytest.Config) -> None:
    """Set the option from ``JSONRPC_SEED`` (else 0) unless given; keep the error of a bad value.

    The plugin is loaded by entry point into every pytest run of the environment, also
    runs that never use jsonrpc_mini: a bad value must not stop those, so the error is
    raised only where the seed is used (:func:`_run_seed`).
    """
    if config.getoption("--jsonrpc-seed") is not None:
        return
    text = os.environ.get("JSONRPC_SEED")
    try:
        seed = DEFAULT_SEED if text is None else int(text)
    except ValueError:
        config.stash[_SEED_ERROR_KEY] = (
            f"JSONRPC_SEED must be an integer, not {text!r}: set it to one, unset it, or pass --jsonrpc-seed N"
        )
    else:
        config.option.jsonrpc_seed = seed


def _run_seed(config: pytest.Config) -> int:
    """The run's seed; pytest.UsageError if ``JSONRPC_SEED`` is not an integer."""
    __tracebackhide__ = True
    error = config.stash.get(_SEED_ERROR_KEY, None)
    if error is not None:
        raise pytest.UsageError(error)
    seed: int = config.getoption("--jsonrpc-seed")
    return seed


def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Under coverage, let the library be imported afresh so that coverage sees all of it.

    pytest imports this plugin (and with it the whole ``jsonrpc_mini`` package, the
    parent of this module) before pytest-cov starts measuring, which would leave
    every module-level line of the library unmeasured. pytest-cov starts in its
    ``tryfirst`` implementation of this hook; conftest files are loaded after this
    one. Nothing but this plugin has imported ``jsonrpc_mini`` yet, and this plugin
    imports it only inside its fixtures, so forgetting the modules is safe.
    """
    coverage = sys.modules.get("coverage")
    current = None if coverage is None else coverage.Coverage.current()
    if current is None:
        return
    # Only when jsonrpc_mini itself is measured (our own suite): a user's run that
    # measures their code keeps the modules it already has.
    sources = getattr(getattr(current, "config", None), "source", None) or ()
    if not any("jsonrpc_mini" in str(source) for source in sources):
        return
    for name in list(sys.modules):
        if (name == "jsonrpc_mini" or name.startswith("jsonrpc_mini.")) and name != __name__:
            del sys.modules[name]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``jsonrpc_faults`` marker; read ``JSONRPC_SEED`` unless ``--jsonrpc-seed`` is given."""
    _seed_from_env(config)
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**fields): apply a jsonrpc_mini FaultPlan (e.g. max_chunk=1) to the test's "
        "jsonrpc_loopback and jsonrpc_server connections; seed defaults to --jsonrpc-seed",
    )


def pytest_report_header(config: pytest.Config) -> str:
    """Print the seed so that any run can be replayed (or why there is none)."""
    error = config.stash.get(_SEED_ERROR_KEY, None)
    if error is not None:
        return f"jsonrpc_mini: {error} (the tests that use the seed will fail)"
    return f"jsonrpc_mini: --jsonrpc-seed={config.getoption('--jsonrpc-seed')}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Add the seed and the fault plans to the report of a failing test that used them.

    The plans are the test's own (the marker's) and any other given as ``faults=`` to
    ``jsonrpc_loopback`` or ``jsonrpc_server``; a test that used only ``jsonrpc_seed``
    gets the replay command alone.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call":
        _warn_unused_marker(item)
    seed = item.stash.get(_SEED_USED_KEY, None)
    if not report.failed or seed is None:
        return
    lines = []
    plan = item.stash.get(_PLAN_KEY, None)
    if plan is not None:
        lines.append(f"fault plan: {plan!r}")
    lines.extend(f"fault plan given as faults=: {given!r}" for given in item.stash.get(_GIVEN_PLANS_KEY, []))
    lines.append(f"replay with: pytest --jsonrpc-seed={seed} {item.nodeid}")
    report.sections.append(("jsonrpc_mini", "\n".join(lines)))


def _warn_unused_marker(item: pytest.Item) -> None:
    """Warn when the test's own ``jsonrpc_faults`` marker made no plan: it applied to nothing.

    The marker reaches only the ``jsonrpc_faults`` fixture (and through it the plugin's
    factories); a test calling ``loopback()`` or ``LoopbackServer`` itself would
    otherwise pass without a single fault, its author believing it ran under them.
    A marker on a class or module is meant for those of its tests that use the fixtures.
    """
    own = any(marker.name == MARKER for marker in getattr(item, "own_markers", ()))
    if own and _MARKER_READ_KEY not in item.stash:
        item.warn(
            pytest.PytestWarning(
                f"@pytest.mark.{MARKER} on {item.name} applied to nothing: its plan reaches only the "
                "jsonrpc_loopback and jsonrpc_server fixtures (or jsonrpc_faults, to pass on as faults=), "
                "and the test used none of them"
            )
        )


def _given_plan(request: pytest.FixtureRequest, faults: KitFaults) -> None:
    """Note a plan given as ``faults=`` that is not the test's, for the failure report.

    Each plan of a per-connection list (``jsonrpc_server(server, faults=[...])``) counts.
    """
    from ._plan import FaultPlan  # noqa: PLC0415 - see the note at the imports

    given = request.node.stash.setdefault(_GIVEN_PLANS_KEY, [])
    for plan in faults if isinstance(faults, (list, tuple)) else (faults,):
        if isinstance(plan, FaultPlan) and plan != request.node.stash.get(_PLAN_KEY, None) and plan not in given:
            given.append(plan)


@contextlib.contextmanager
def _kit_stack(request: pytest.FixtureRequest) -> Iterator[contextlib.ExitStack]:
    """An ExitStack closed at the fixture's teardown, or earlier by ``jsonrpc_no_leaks``."""
    with contextlib.ExitStack() as stack:
        request.node.stash.setdefault(_KITS_KEY, []).append(stack)
        yield stack


@pytest.fixture
def jsonrpc_seed(request: pytest.FixtureRequest) -> int:
    """The run's seed (``--jsonrpc-seed``, else ``JSONRPC_SEED``, else 0)."""
    __tracebackhide__ = True
    seed = _run_seed(request.config)
    request.node.stash[_SEED_USED_KEY] = seed
    return seed


@pytest.fixture
def jsonrpc_faults(request: pytest.FixtureRequest, jsonrpc_seed: int) -> FaultPlan:
    """The test's fault plan: from ``@pytest.mark.jsonrpc_faults(...)``, else none (seed only)."""
    from ._plan import FaultPlan  # noqa: PLC0415 - see the note at the imports

    __tracebackhide__ = True
    request.node.stash[_MARKER_READ_KEY] = True
    fields: dict[str, Any] = {"seed": jsonrpc_seed}
    for marker in reversed(list(request.node.iter_markers(MARKER))):  # the closest marker wins
        if marker.args:
            raise TypeError(f"@pytest.mark.{MARKER} takes keyword arguments only (FaultPlan fields)")
        fields.update(marker.kwargs)
    try:
        plan = FaultPlan(**fields)
    except (TypeError, ValueError) as exc:  # name the marker, not the plugin's frame
        del request.node.stash[_SEED_USED_KEY]  # no plan was made: nothing to replay
        given = ", ".join(f"{key}={value!r}" for key, value in fields.items() if key != "seed" or value != jsonrpc_seed)
        raise type(exc)(f"@pytest.mark.{MARKER}({given}): {exc}") from None
    request.node.stash[_PLAN_KEY] = plan
    return plan


@pytest.fixture
def jsonrpc_loopback(request: pytest.FixtureRequest, jsonrpc_faults: FaultPlan) -> Iterator[LoopbackFactory]:
    """Factory: ``jsonrpc_loopback(server, faults=..., timeout=...)`` -> an in-memory RPCClient.

    ``faults`` defaults to the test's plan (the marker), as ``faults=...`` says (for a
    fixture of the user's that passes "not given" on); everything is stopped at teardown.
    """
    from ._kit_args import check_kit_args  # noqa: PLC0415 - see the note at the imports
    from ._loopback import loopback  # noqa: PLC0415 - see the note at the imports

    with _kit_stack(request) as stack:
        count = [0]

        def make(
            server: RPCServer,
            faults: FaultPlan | EllipsisType | None = ...,
            *,
            timeout: float | None = _DEFAULT_TIMEOUT,
            **kw: Any,
        ) -> RPCClient:
            __tracebackhide__ = True
            plan = jsonrpc_faults if faults is ... else faults
            _given_plan(request, plan)
            check_kit_args("loopback", server, plan, aio=False)  # (here: a refusal shows the test's call only)
            count[0] += 1
            return stack.enter_context(loopback(server, plan, timeout=timeout, connection=count[0] - 1, **kw))

        yield make


@pytest.fixture
def jsonrpc_server(request: pytest.FixtureRequest, jsonrpc_faults: FaultPlan) -> Iterator[LoopbackServerFactory]:
    """Factory: ``jsonrpc_server(server, faults=...)`` -> a started :class:`LoopbackServer`.

    ``faults`` defaults to the test's plan (the marker), as ``faults=...`` says; a list
    of plans, one per connection, is passed on as to ``LoopbackServer``. Every one is
    closed at teardown.
    """
    from ._kit_args import check_kit_args  # noqa: PLC0415 - see the note at the imports
    from ._proxy import LoopbackServer  # noqa: PLC0415 - see the note at the imports

    with _kit_stack(request) as stack:

        def make(server: RPCServer | AioRPCServer, faults: KitFaults | EllipsisType = ..., **kw: Any) -> LoopbackServer:
            __tracebackhide__ = True
            plan = jsonrpc_faults if faults is ... else faults
            _given_plan(request, plan)
            check_kit_args("LoopbackServer", server, plan, aio=False)
            return stack.enter_context(LoopbackServer(server, plan, **kw))

        yield make


@pytest.fixture
def jsonrpc_fake_socket(request: pytest.FixtureRequest) -> Iterator[FakeSocketFactory]:
    """Factory: ``jsonrpc_fake_socket(inbound, **options)`` -> a :class:`FakeSocket`, closed at teardown."""
    from ._fake_socket import FakeSocket  # noqa: PLC0415 - see the note at the imports

    with _kit_stack(request) as stack:

        def make(*args: Any, **kw: Any) -> FakeSocket:
            sock = FakeSocket(*args, **kw)
            stack.callback(sock.close)
            return sock

        yield make


@pytest.fixture
def jsonrpc_no_leaks(request: pytest.FixtureRequest) -> Iterator[Resources]:
    """Fail the test if it leaves a new thread or file descriptor behind (checked at teardown).

    The test's ``jsonrpc_loopback``, ``jsonrpc_server`` and ``jsonrpc_fake_socket`` are
    closed first, whatever the order of the fixtures: they do not count as leaks.
    """
    from ._leaks import Resources  # noqa: PLC0415 - see the note at the imports

    __tracebackhide__ = True
    before = Resources()
    yield before
    for stack in reversed(request.node.stash.get(_KITS_KEY, [])):
        stack.close()  # an ExitStack closes once: its fixture's own teardown then does nothing
    before.assert_no_leaks()
