"""Hypothesis profiles for the whole test suite.

``ci`` (the default) is fast and derandomized: the same examples on every run, so a
red CI build is reproducible and a green one is not luck. ``deep`` runs many more,
random examples and keeps a local example database; run it by hand::

    HYPOTHESIS_PROFILE=deep python -m pytest fuzz

Tests that are expensive per example (real sockets, threads) scale their own example
counts from the active profile with ``fuzz._budget.scaled``.
"""

from __future__ import annotations

import os

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
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
