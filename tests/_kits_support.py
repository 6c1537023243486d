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
is left drops what it has not read yet.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _aio_support import WAIT, run

from jsonrpc_mini import RPCError, RPCServer, aio
from jsonrpc_mini.testing import AioLoopbackServer, FaultPlan, LoopbackServer, aio_loopback, loopback

KITS = ("loopback", "LoopbackServer", "aio_loopback", "AioLoopbackServer")
SYNC_KITS = KITS[:2]
_JOIN = 90.0  # (the test's own timeout, 120 s, ends a hang first)

Call = Callable[..., Any]


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
