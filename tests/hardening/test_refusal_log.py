"""Refusals at max_connections: one WARNING for a run of them, not one each (a flood filled the log).

The first refusal is logged at once; later ones within ``INTERVAL`` are counted
(DEBUG each) and the count goes out with the next warning or at shutdown.
"""

from __future__ import annotations

import logging

import pytest
from _hardening import WAIT, Raw, running

from jsonrpc_mini import _refusal_log
from jsonrpc_mini._refusal_log import INTERVAL, RefusalLog

pytestmark = pytest.mark.timeout(60)

REFUSED = 30


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jsonrpc_mini" and r.levelno >= logging.WARNING]


def test_a_run_of_refusals_gives_one_warning_and_its_count_at_shutdown(
    kind: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    monkeypatch.setattr(_refusal_log, "INTERVAL", 3600.0)  # the refusals surely come within one interval
    with running(kind, {"max_connections": 1}) as srv, srv.client() as held:
        assert held.echo("in") == "in"
        for _ in range(REFUSED):
            with Raw(srv.address) as extra:
                reply = extra.reply()
                assert extra.closed_within(WAIT)
            assert "too many connections" in reply["error"]["message"]
        during = warnings(caplog)
        refusals = [r for r in caplog.records if "max_connections reached" in r.getMessage()]
        srv.stop()
    assert len(during) == 1 and "further refusals: one warning per" in during[0], during
    assert len(refusals) == REFUSED  # each one still logged (DEBUG after the first)
    after = warnings(caplog)[1:]
    assert after == [f"{REFUSED - 1} more connections were refused at max_connections since the last warning"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_after_the_interval_the_next_refusal_warns_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    clock = Clock()
    refusals = RefusalLog(INTERVAL, clock)
    refusals.refused()
    for _ in range(4):
        clock.now += INTERVAL / 5
        refusals.refused()  # 100.0 + 2, 4, 6, 8: within the interval
    clock.now = 100.0 + INTERVAL - 0.01  # still within
    refusals.refused()
    assert len(warnings(caplog)) == 1
    clock.now = 100.0 + INTERVAL  # the interval has passed
    refusals.refused()
    assert warnings(caplog)[1:] == ["refusing a connection: max_connections reached (6 refused since the last warning)"]
    clock.now += 1.0
    refusals.refused()  # a new interval began at 110.0: counted
    assert len(warnings(caplog)) == 2
    refusals.flush()
    assert warnings(caplog)[2:] == ["1 more connections were refused at max_connections since the last warning"]
    refusals.flush()  # nothing counted since: nothing logged
    assert len(warnings(caplog)) == 3
    refusals.refused()  # after a flush the next refusal warns at once
    assert len(warnings(caplog)) == 4 and "further refusals" in warnings(caplog)[3]
