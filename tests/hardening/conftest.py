"""Fixtures for the hardening tests: each server-facing test runs against every server kind."""

from __future__ import annotations

import pytest

# The asyncio driver joins this list once it is committed (issue 9: both servers).
KINDS = ["sync", "aio"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Which server implementation a test runs against."""
    return str(request.param)
