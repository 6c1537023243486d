"""Example budgets scaled from the active Hypothesis profile (ci or deep)."""

from __future__ import annotations

from typing import Any

from hypothesis import settings


def scaled(fraction: float, **overrides: Any) -> settings:
    """Settings running ``fraction`` of the profile's examples (at least 5).

    Tests whose examples cost real sockets or threads use a fraction below 1 so the
    ci profile stays fast; the deep profile scales them up with everything else.
    """
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)), **overrides)
