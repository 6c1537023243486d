"""Helpers for tests that run the same work on the four fault-injecting kits and compare.

``on_kits(plan, timeout, work, awork)`` runs ``work(call)`` on a client of
``loopback()`` and of ``LoopbackServer`` and ``awork(call)`` on one of
``aio_loopback()`` and of ``AioLoopbackServer``, the four at once (a thread each:
the plans' delays are waited out together), and returns ``{kit: result}``.
``call(name, *args)`` is one call's outcome: its result, or the class of the
``RPCError`` it raised (``call("-name", ...)`` sends a notification: ``"sent"``).
Each kit serves ``echo`` and ``log`` (a notification target whose arguments
``logged[kit]`` records); with ``served=n`` a kit is left only once its server
has logged ``n`` notifications (or after ``WAIT``): a server shut down as the kit
is left drops what it has not read yet. ``Taken`` and ``CountedWaits`` tell a test
where a kit's bytes or a reader are (instead of a sleep).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _aio_support import WAIT, run, until
from _driver_helpers import wait_for

from jsonrpc_mini import RPCError, RPCServer, SocketTransport, aio
from jsonrpc_mini.testing import AioLoopbackServer, FaultPlan, LoopbackServer, aio_loopback, loopback
from jsonrpc_mini.testing._pipe import PipeTransport
from jsonrpc_mini.testing._plan import DirectionState, Step

KITS = ("loopback", "LoopbackServer", "aio_loopback", "AioLoopbackServer")
SYNC_KITS = KITS[:2]
_JOIN = 90.0  # (the test's own timeout, 120 s, ends a hang first)

Call = Callable[..., Any]


def _relay_thread() -> bool:
    """Whether this is a thread of ``LoopbackServer``'s proxy (see ``_relay``)."""
    return threading.current_thread().name.startswith("jsonrpc_mini-proxy-")


def sync_server(logged: list[object]) -> RPCServer:
    server = RPCServer()
    server.register_function(lambda value: value, name="echo")
    server.register_function(logged.append, name="log")
    return server


def aio_server(logged: list[object]) -> aio.RPCServer:
    server = aio.RPCServer()

    @server.register
    async def echo(value: object) -> object:
        return value

    @server.register
    async def log(value: object) -> None:
        logged.append(value)

    return server


def _sync_call(client: Any) -> Call:
    def call(name: str, *args: object) -> object:
        try:
            if name.startswith("-"):
                client.notify(name[1:], *args)
                return "sent"
            return getattr(client, name)(*args)
        except RPCError as exc:
            return type(exc)

    return call


def _aio_call(client: Any) -> Call:
    async def call(name: str, *args: object) -> object:
        try:
            if name.startswith("-"):
                await client.notify(name[1:], *args)
                return "sent"
            return await getattr(client, name)(*args)
        except RPCError as exc:
            return type(exc)

    return call


def on_kit(
    kit: str, plan: FaultPlan, timeout: float, work: Callable[[Call], object], logged: list[object], served: int = 0
) -> object:
    """``work(call)`` on a client of the sync ``kit``; the server is shut down (its calls ended) after."""
    server = sync_server(logged)
    try:
        if kit == "loopback":
            with loopback(server, faults=plan, timeout=timeout) as client:
                result = work(_sync_call(client))
                _until_served(logged, served)
                return result
        with LoopbackServer(server, faults=plan) as srv:
            result = work(_sync_call(srv.client(timeout=timeout)))
            _until_served(logged, served)
            return result
    finally:
        server.shutdown()


def _until_served(logged: list[object], served: int) -> None:
    for _ in range(int(WAIT / 0.01)):
        if len(logged) >= served:
            return
        time.sleep(0.01)


async def _aio_until_served(logged: list[object], served: int) -> None:
    for _ in range(int(WAIT / 0.01)):
        if len(logged) >= served:
            return
        await asyncio.sleep(0.01)


async def on_aio_kit(
    kit: str,
    plan: FaultPlan,
    timeout: float,
    awork: Callable[[Call], Awaitable[object]],
    logged: list[object],
    served: int = 0,
) -> object:
    """``awork(call)`` on a client of the asyncio ``kit``; the server is shut down (its calls ended) after."""
    server = aio_server(logged)
    try:
        if kit == "aio_loopback":
            async with aio_loopback(server, faults=plan, timeout=timeout) as client:
                result = await awork(_aio_call(client))
                await _aio_until_served(logged, served)
                return result
        async with AioLoopbackServer(server, faults=plan) as srv:
            result = await awork(_aio_call(await srv.client(timeout=timeout)))
            await _aio_until_served(logged, served)
            return result
    finally:
        await server.shutdown()


def on_kits(
    plan: FaultPlan | dict[str, FaultPlan],
    timeout: float,
    work: Callable[[Call], object],
    awork: Callable[[Call], Awaitable[object]],
    logged: dict[str, list[object]] | None = None,
    served: int = 0,
    kits: tuple[str, ...] = KITS,
) -> dict[str, object]:
    """``{kit: result}`` of the work on each kit, the kits run at once (see the module docstring).

    With plans by name, every kit runs with each plan, all at once: ``{"name kit": result}``.
    """
    plans = plan if isinstance(plan, dict) else {"": plan}
    runs = [(f"{name} {kit}".strip(), plans[name], kit) for name in plans for kit in kits]
    results: dict[str, object] = {}
    errors: dict[str, BaseException] = {}
    logs: dict[str, list[object]] = {} if logged is None else logged

    def one(key: str, plan: FaultPlan, kit: str) -> None:
        try:
            log = logs.setdefault(key, [])
            if kit in SYNC_KITS:
                results[key] = on_kit(kit, plan, timeout, work, log, served)
            else:
                results[key] = run(lambda: on_aio_kit(kit, plan, timeout, awork, log, served))
        except BaseException as exc:  # (re-raised in the test's thread)
            errors[key] = exc

    threads = [threading.Thread(target=one, args=args, name=f"kit {args[0]}") for args in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_JOIN)
    assert not [thread.name for thread in threads if thread.is_alive()], "a kit did not finish"
    for key, exc in errors.items():
        exc.add_note(f"on {key}")
        raise exc
    return {key: results[key] for key, _, _ in runs}


def same(value: object, names: tuple[str, ...] = ("",), kits: tuple[str, ...] = KITS) -> dict[str, object]:
    """What ``on_kits`` returns when every kit gives ``value`` (``names``: those of the plans)."""
    return {f"{name} {kit}".strip(): value for name in names for kit in kits}


def one_call(plan: FaultPlan | dict[str, FaultPlan], timeout: float, *args: object) -> dict[str, object]:
    """``{kit: outcome}`` of one ``echo(*args)`` on each kit."""

    async def awork(call: Call) -> object:
        return await call("echo", *args)

    return on_kits(plan, timeout, lambda call: call("echo", *args), awork)


class Taken:
    """When the kits' links took the bytes their clients wrote (no sleep: see ``wait``).

    Taken: in flight, their delay counted from then. ``loopback()`` and the aio links
    take a client's bytes where the plan's client-to-server ``DirectionState.commit``
    counts them (as the client sends, as the link's task cuts them); the proxy of
    ``LoopbackServer`` as its client-side reader thread reads them from the socket
    (stamped: its relay counts them later, once the bytes before have been let through).
    ``lines()`` is how many whole request lines were taken, ``when(n)`` when the n-th
    was, ``after(n)`` when the bytes after it were; ``clear()`` forgets (a new round).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken: list[tuple[float, int]] = []  # (when, request lines taken whole until then)
        commit, read = DirectionState.commit, SocketTransport.recv

        def committed(state: DirectionState, data: bytes, step: Step) -> None:
            commit(state, data, step)
            if state.name == "client_to_server" and not _relay_thread():
                self._took(data)

        def read_by_proxy(transport: SocketTransport, max_bytes: int, timeout: float | None) -> bytes:
            data = read(transport, max_bytes, timeout)
            if threading.current_thread().name.endswith("-client-reader"):  # (EagerReader, _relay)
                self._took(data)
            return data

        monkeypatch.setattr(DirectionState, "commit", committed)
        monkeypatch.setattr(SocketTransport, "recv", read_by_proxy)

    def _took(self, data: bytes) -> None:
        if data:
            before = self.taken[-1][1] if self.taken else 0
            self.taken.append((time.monotonic(), before + bytes(data).count(b"\n")))

    def clear(self) -> None:
        """Forget what was taken so far."""
        self.taken.clear()

    def lines(self) -> int:
        """How many request lines were taken whole."""
        return self.taken[-1][1] if self.taken else 0

    def when(self, lines: int) -> float:
        """When the ``lines``-th request line was taken whole (it must have been)."""
        return next(at for at, whole in self.taken if whole >= lines)

    def after(self, lines: int) -> float | None:
        """When the first bytes after the ``lines``-th request line were taken, if they were."""
        first = next(i for i, (_, whole) in enumerate(self.taken) if whole >= lines)
        return self.taken[first + 1][0] if first + 1 < len(self.taken) else None

    def wait(self, lines: int) -> float:
        """Wait until ``lines`` request lines were taken whole; when the last of them was."""
        wait_for(lambda: self.lines() >= lines, f"the link to take {lines} requests")
        return self.when(lines)

    async def wait_async(self, lines: int) -> float:
        """``wait`` for a coroutine."""
        await until(lambda: self.lines() >= lines)
        return self.when(lines)


class CountedWaits:
    """A pipe pair's condition that counts the waits begun on it (``waits``).

    A wait begins under the pair's lock and gives it up only as it sleeps: once
    ``waits`` has grown, whoever takes the lock next finds that reader asleep.
    """

    def __init__(self, inner: threading.Condition) -> None:
        self._inner = inner
        self.waits = 0

    def __enter__(self) -> bool:
        return self._inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(None, None, None)

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return self._inner.wait(timeout)

    def notify_all(self) -> None:
        self._inner.notify_all()

    @classmethod
    def on(cls, a: PipeTransport, b: PipeTransport) -> CountedWaits:
        """Count the waits on the pipe pair ``a``, ``b`` (its two ends share one condition)."""
        counted = cls(a._cond)
        a._cond = b._cond = counted  # type: ignore[assignment]
        return counted
