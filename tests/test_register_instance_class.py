"""register_instance(SomeClass) where SomeClass() was meant: refused at once, on both servers."""

from __future__ import annotations

import asyncio

import pytest

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import aio_loopback, loopback


class Store:
    """A service class whose methods need an instance."""

    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def set(self, key: str, value: int) -> bool:
        self.data[key] = value
        return True

    def keys(self) -> list[str]:
        return sorted(self.data)


class Namespace:
    """Static and class methods only: usable as a class."""

    @staticmethod
    def add(a: int, b: int) -> int:
        return a + b

    @classmethod
    def name(cls) -> str:
        return cls.__name__


MESSAGE = (
    r"^register_instance\(\) got the class Store, whose method 'keys' needs an instance"
    r" \(its first argument would be self\): pass an instance, Store\(\)$"
)


def test_the_sync_server_refuses_a_class_whose_methods_need_self() -> None:
    # It used to register the unbound functions: kv.keys() answered -32602 "missing a
    # required argument: 'self'" and kv.set("a", 1) bound "a" to self.
    server = RPCServer()
    with pytest.raises(TypeError, match=MESSAGE):
        server.register_instance(Store, prefix="kv.")
    assert server.methods == {}  # nothing half-registered
    assert server.register_instance(Store(), prefix="kv.") == ["kv.keys", "kv.set"]
    with loopback(server) as client:
        assert client.kv.set("a", 1) is True
        assert client.kv.keys() == ["a"]


def test_the_aio_server_refuses_it_too() -> None:
    server = aio.RPCServer()
    with pytest.raises(TypeError, match=MESSAGE):
        server.register_instance(Store)
    assert server.methods == {}


def test_a_class_of_static_and_class_methods_is_still_a_namespace() -> None:
    server = aio.RPCServer()
    assert server.register_instance(Namespace, prefix="ns.") == ["ns.add", "ns.name"]

    async def main() -> None:
        async with aio_loopback(server) as client:
            assert await client.ns.add(1, 2) == 3
            assert await client.ns.name() == "Namespace"
        await server.shutdown()

    asyncio.run(main())
