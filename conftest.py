"""Hypothesis profiles and the garbage collector's freezes for the whole test suite.

``ci`` (the default) is fast and derandomized: the same examples on every run, so a
red CI build is reproducible and a green one is not luck. ``deep`` runs many more,
random examples and keeps a local example database; run it by hand::

    HYPOTHESIS_PROFILE=deep python -m pytest fuzz

Tests that are expensive per example (real sockets, threads) scale their own example
counts from the active profile with ``fuzz._budget.scaled``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, Phase, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
    # Explaining a failure re-runs it many times: useful by hand, too slow for CI.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
settings.register_profile(
    "deep",
    # FUZZ_EXAMPLES sets a longer (or shorter) hand run; fuzz/README.md says how.
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")),
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# Many tests run a full gc.collect() to find what they leave behind (LeakCheck, the
# asyncio run() helper: an unclosed socket, a future's exception never retrieved).
# A full collection walks every object the worker holds: ~290k after collecting the
# suite, 0.1-0.4 s each, most of the suite's teardown time. What is alive when a test
# file begins is not what its tests leave behind: frozen (gc.freeze), the collections
# walk only what was made since. Garbage is collected before each freeze, and each
# test file's leftovers once it ends, so that nothing a test leaves goes unreported
# or frozen with the live objects.


def _collect_and_freeze() -> None:
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collecting the tests made (modules, test items, strategies)."""
    _collect_and_freeze()


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    """After a test file's last test (its module fixtures ended too): collect its garbage, freeze the rest."""
    try:
        yield
    finally:
        if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
            _collect_and_freeze()
