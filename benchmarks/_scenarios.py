"""What each network scenario does with a client, and how much of it makes one sample."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIB_STRING = ("0123456789abcdefghijklmnopqrstuvwxyz" * 29128)[: 2**20]
SMALL_DICTS = [{"id": i, "name": f"item-{i}", "price": 1.25, "tags": ["a", "b"]} for i in range(10_000)]
THREADS = 8
BATCH = 1_000


@dataclass(frozen=True)
class Scenario:
    """One network scenario: ``run(client, n)`` returns seconds per operation."""

    key: str
    title: str
    unit: str
    run: Callable[[Any, int], float]
    check: Callable[[Any], None]
    per_sample: int  # operations per sample (full run)
    per_sample_quick: int


def _seq(client: Any, n: int) -> float:
    call = client.call
    start = time.perf_counter()
    for _ in range(n):
        call("add", 1, 2)
    return (time.perf_counter() - start) / n


def _threads(client: Any, n: int) -> float:
    clients = client.thread_clients(THREADS)
    each = max(1, n // THREADS)
    barrier = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def work(c: Any) -> None:
        try:
            if hasattr(c, "claim"):
                c.claim()
            barrier.wait()
            for _ in range(each):
                c.call("add", 1, 2)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed / (each * THREADS)


def _echo(value: Any) -> Callable[[Any, int], float]:
    def run(client: Any, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            client.call("echo", value)
        return (time.perf_counter() - start) / n

    return run


def _batch(client: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        client.batch_add(BATCH)
    return (time.perf_counter() - start) / n


def _check_add(client: Any) -> None:
    assert client.call("add", 1, 2) == 3


def _check_threads(client: Any) -> None:
    _threads(client, THREADS)


def _check_echo(value: Any) -> Callable[[Any], None]:
    def check(client: Any) -> None:
        got = client.call("echo", value)
        assert list(got) == value if isinstance(value, list) else got == value, "echo returned something else"

    return check


def _check_batch(client: Any) -> None:
    assert client.batch_add(BATCH) == [i + 1 for i in range(BATCH)]


SCENARIOS = [
    Scenario("seq", "sequential add(1, 2), one connection", "call", _seq, _check_add, 2000, 400),
    Scenario(
        "threads", f"{THREADS} threads sharing one client, add(1, 2)", "call", _threads, _check_threads, 2400, 800
    ),
    Scenario("echo_mib", "echo of a 1 MiB string", "call", _echo(MIB_STRING), _check_echo(MIB_STRING), 10, 4),
    Scenario("echo_dicts", "echo of 10,000 small dicts", "call", _echo(SMALL_DICTS), _check_echo(SMALL_DICTS), 6, 2),
    Scenario("batch", f"a batch of {BATCH:,} add calls", "batch", _batch, _check_batch, 6, 2),
]
