"""Client side of each contender, behind one small interface the scenarios use.

``connect()`` opens a client; the client offers ``call(method, *args)``,
``batch_add(n)`` (n calls of add(i, 1) sent as one batch, results in order),
``thread_clients(n)`` (the clients n worker threads use: the same object when
it can be shared, else ones made ahead of time) and ``close()``.
"""

from __future__ import annotations

import itertools
import socket
import threading
from typing import Any

from benchmarks import _codecs


class RawClient:
    """The hand-written floor: blocking socket, buffered reader, newline JSON.

    Threads share it by taking a lock around each round trip, as hand-written code would.
    """

    def __init__(self, host: str, port: int, codec: str) -> None:
        self._loads, self._dumps = _codecs.raw_codec(codec)
        self._sock = socket.create_connection((host, port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._sock.makefile("rb")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:
            msg = {"jsonrpc": "2.0", "method": method, "params": list(args), "id": next(self._ids)}
            self._sock.sendall(self._dumps(msg) + b"\n")
            return self._loads(self._reader.readline())["result"]

    def batch_add(self, n: int) -> list[Any]:
        with self._lock:
            msgs = [{"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": next(self._ids)} for i in range(n)]
            self._sock.sendall(self._dumps(msgs) + b"\n")
            return [reply["result"] for reply in self._loads(self._reader.readline())]

    def thread_clients(self, count: int) -> list[Any]:
        return [self] * count

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


class MiniClient:
    """jsonrpc_mini's RPCClient: shared between threads as it is designed to be."""

    def __init__(self, host: str, port: int, codec: str) -> None:
        from jsonrpc_mini import RPCClient

        with _codecs.pinned(codec):
            self._client = RPCClient(host, port)
        # The client's own call, not a method passing the call on: the scenarios time
        # RPCClient.call as a user's code calls it, as they time RawClient.call. (The
        # pass-through cost a Python call, its arguments packed again, and a lookup the
        # interpreter cannot specialize on a class with __getattr__: ~2.3k of ~66k
        # instructions a round trip, by callgrind.)
        self.call = self._client.call

    def batch_add(self, n: int) -> list[Any]:
        with self._client.batch() as batch:
            results = [batch.add(i, 1) for i in range(n)]
        return [r.result() for r in results]

    def thread_clients(self, count: int) -> list[Any]:
        return [self] * count

    def close(self) -> None:
        self._client.close()


class _LockedHttpProxy:
    """An XML-RPC-style ServerProxy shared by all threads under a lock, with MultiCall batches.

    Subclasses set ``_module`` (which provides ``MultiCall``), ``_proxy`` and ``_lock``.
    """

    _module: Any
    _proxy: Any
    _lock: threading.Lock

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:
            return getattr(self._proxy, method)(*args)

    def batch_add(self, n: int) -> list[Any]:
        with self._lock:
            multi = self._module.MultiCall(self._proxy)
            for i in range(n):
                multi.add(i, 1)
            return list(multi())

    def thread_clients(self, count: int) -> list[Any]:
        return [self] * count

    def close(self) -> None:
        self._proxy("close")()


class XmlRpcClient(_LockedHttpProxy):
    """stdlib xmlrpc.client (HTTP/1.1 keep-alive); a ServerProxy is not thread-safe: lock."""

    def __init__(self, host: str, port: int, codec: str) -> None:
        import xmlrpc.client

        self._module = xmlrpc.client
        self._proxy = xmlrpc.client.ServerProxy(f"http://{host}:{port}/", allow_none=True)
        self._lock = threading.Lock()


class JsonRpcLibClient(_LockedHttpProxy):
    """jsonrpclib-pelix over HTTP/1.1; one proxy shared under a lock."""

    def __init__(self, host: str, port: int, codec: str) -> None:
        import jsonrpclib

        self._module = jsonrpclib
        self._proxy = jsonrpclib.ServerProxy(f"http://{host}:{port}/")
        self._lock = threading.Lock()


class Pyro5Client:
    """Pyro5 with its fastest installed serializer.

    A Pyro5 proxy belongs to one thread, so each worker thread gets its own proxy
    (made before timing starts): the way Pyro5's documentation says to share.
    """

    def __init__(self, host: str, port: int, codec: str) -> None:
        import Pyro5.api

        Pyro5.config.SERIALIZER = pyro5_serializer()
        self._api = Pyro5.api
        self._uri = f"PYRO:bench@{host}:{port}"
        self._proxy = self._connect()
        self._pool: list[Any] = []

    def _connect(self) -> Any:
        proxy = self._api.Proxy(self._uri)
        proxy._pyroBind()
        return proxy

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self._proxy, method)(*args)

    def batch_add(self, n: int) -> list[Any]:
        batch = self._api.BatchProxy(self._proxy)
        for i in range(n):
            batch.add(i, 1)
        return list(batch())

    def thread_clients(self, count: int) -> list[Any]:
        while len(self._pool) < count:
            self._pool.append(self._connect())
        return [_Pyro5View(proxy) for proxy in self._pool[:count]]

    def close(self) -> None:
        for proxy in [self._proxy, *self._pool]:
            proxy._pyroClaimOwnership()
            proxy._pyroRelease()


class _Pyro5View:
    """One worker thread's own proxy; ``claim`` runs in that thread before timing."""

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy

    def claim(self) -> None:
        self._proxy._pyroClaimOwnership()

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self._proxy, method)(*args)


def pyro5_serializer() -> str:
    """Pyro5's fastest serializer that is installed and can carry a batch.

    msgpack when installed (the ``bench`` extra installs it); else marshal, which
    is always there but cannot carry Pyro5 batches.
    """
    try:
        import msgpack  # noqa: F401
    except ImportError:
        return "marshal"
    return "msgpack"


class RpycClient:
    """RPyC: one connection shared under a lock (values by reference make dicts a poor fit)."""

    def __init__(self, host: str, port: int, codec: str) -> None:
        import rpyc

        self._conn = rpyc.connect(host, port)
        self._root = self._conn.root
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        if any(isinstance(arg, (list, dict)) for arg in args):
            # RPyC passes mutable values by reference: an "echo" would return a proxy.
            raise NotImplementedError("RPyC passes lists and dicts by reference, not by value")
        with self._lock:
            return getattr(self._root, method)(*args)

    def batch_add(self, n: int) -> list[Any]:
        raise NotImplementedError("RPyC has no batches")

    def thread_clients(self, count: int) -> list[Any]:
        return [self] * count

    def close(self) -> None:
        self._conn.close()


CLIENTS: dict[str, Any] = {
    "raw": RawClient,
    "jsonrpc_mini": MiniClient,
    "xmlrpc": XmlRpcClient,
    "jsonrpclib": JsonRpcLibClient,
    "pyro5": Pyro5Client,
    "rpyc": RpycClient,
}
