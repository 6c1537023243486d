"""Benchmark servers, each run in its own process: ``python -m benchmarks._servers KIND CODEC``.

The process prints ``HOST PORT`` on its first line and serves until its stdin closes.
Every server offers the same two methods: ``add(a, b)`` and ``echo(x)``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from benchmarks import _codecs


def add(a: Any, b: Any) -> Any:
    return a + b


def echo(x: Any) -> Any:
    return x


METHODS: dict[str, Callable[..., Any]] = {"add": add, "echo": echo}


# -- the floor: what a careful programmer writes by hand ----------------------------


def serve_raw(codec: str) -> tuple[str, int]:
    """Blocking sockets, a thread per connection, newline JSON, dict dispatch."""
    loads, dumps = _codecs.raw_codec(codec)

    def answer(msg: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": msg["id"], "result": METHODS[msg["method"]](*msg["params"])}

    def handle(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            for line in reader:
                msg = loads(line)
                reply = [answer(m) for m in msg] if isinstance(msg, list) else answer(msg)
                conn.sendall(dumps(reply) + b"\n")

    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[:2]


# -- contenders ---------------------------------------------------------------------


def serve_mini(codec: str) -> tuple[str, int]:
    from jsonrpc_mini import RPCServer

    with _codecs.pinned(codec):
        server = RPCServer(max_concurrent_calls=64)
    for name, fn in METHODS.items():
        server.register_function(fn, name)
    address = server.start("127.0.0.1", 0)
    assert isinstance(address, tuple)
    return address


def serve_xmlrpc(codec: str) -> tuple[str, int]:
    import socketserver
    from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

    class Handler(SimpleXMLRPCRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # else headers and body meet Nagle + delayed ACK

    class Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler, logRequests=False, allow_none=True)
    for name, fn in METHODS.items():
        server.register_function(fn, name)
    server.register_multicall_functions()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[:2]


def serve_jsonrpclib(codec: str) -> tuple[str, int]:
    import socketserver

    from jsonrpclib.SimpleJSONRPCServer import SimpleJSONRPCRequestHandler, SimpleJSONRPCServer

    class Handler(SimpleJSONRPCRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

    class Server(socketserver.ThreadingMixIn, SimpleJSONRPCServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), requestHandler=Handler, logRequests=False)
    for name, fn in METHODS.items():
        server.register_function(fn, name)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[:2]


def serve_pyro5(codec: str) -> tuple[str, int]:
    import Pyro5.api

    Pyro5.config.SERVERTYPE = "thread"
    Pyro5.config.THREADPOOL_SIZE = 64

    @Pyro5.api.expose
    class Methods:
        def add(self, a: Any, b: Any) -> Any:
            return a + b

        def echo(self, x: Any) -> Any:
            return x

    daemon = Pyro5.api.Daemon(host="127.0.0.1", port=0)
    daemon.register(Methods, "bench")
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    host, port = daemon.locationStr.rsplit(":", 1)
    return host, int(port)


def serve_rpyc(codec: str) -> tuple[str, int]:
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class Service(rpyc.Service):
        def exposed_add(self, a: Any, b: Any) -> Any:
            return a + b

        def exposed_echo(self, x: Any) -> Any:
            return x

    server = ThreadedServer(Service, hostname="127.0.0.1", port=0, protocol_config={"allow_public_attrs": True})
    server._listen()  # listen before we print the port (start() would do it too late)
    threading.Thread(target=server.start, daemon=True).start()
    return "127.0.0.1", server.port


SERVERS: dict[str, Callable[[str], tuple[str, int]]] = {
    "raw": serve_raw,
    "jsonrpc_mini": serve_mini,
    "xmlrpc": serve_xmlrpc,
    "jsonrpclib": serve_jsonrpclib,
    "pyro5": serve_pyro5,
    "rpyc": serve_rpyc,
}


# ``python -m benchmarks --apart`` names the CPU every server runs on (Linux); the
# benchmark process itself runs on another one.
SERVER_CPU_ENV = "JSONRPC_MINI_BENCH_SERVER_CPU"


def main() -> None:
    if (cpu := os.environ.get(SERVER_CPU_ENV)) is not None:
        os.sched_setaffinity(0, {int(cpu)})  # before any thread starts: they inherit it
    kind, codec = sys.argv[1], sys.argv[2]
    host, port = SERVERS[kind](codec)
    print(host, port, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin (or dies)


if __name__ == "__main__":
    main()
