"""pytest plugin for jsonrpc_mini: the ``--jsonrpc-seed`` option and ``jsonrpc_*`` fixtures."""

from __future__ import annotations

import os

import pytest

DEFAULT_SEED = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--jsonrpc-seed``: the seed every fault plan of the run derives from."""
    group = parser.getgroup("jsonrpc_mini")
    group.addoption(
        "--jsonrpc-seed",
        type=int,
        default=int(os.environ.get("JSONRPC_SEED", DEFAULT_SEED)),
        help="seed for jsonrpc_mini fault plans (replay a failing run with the seed it printed)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    """Print the seed so that any run can be replayed."""
    return f"jsonrpc_mini: --jsonrpc-seed={config.getoption('--jsonrpc-seed')}"


@pytest.fixture
def jsonrpc_seed(request: pytest.FixtureRequest) -> int:
    """The run's seed (``--jsonrpc-seed``)."""
    seed: int = request.config.getoption("--jsonrpc-seed")
    return seed
