"""Command line: ``python -m jsonrpc_mini demo | serve | call``."""

from __future__ import annotations

import argparse
import errno
import importlib
import inspect
import ipaddress
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from ._cli_call import call_command
from ._cli_tls import CLIUsage as _Usage
from ._cli_tls import add_client_options, add_server_options, server_context
from ._client import RPCClient
from ._connect import check_port
from ._errors import RPCError
from ._reprs import path_text
from ._server import RPCServer
from ._tcp_bind import host_port


def _demo(args: argparse.Namespace) -> int:
    server = RPCServer()

    @server.register
    def add(a: float, b: float) -> float:
        return a + b

    def test(*a: Any, **kw: Any) -> dict[str, Any]:
        return {"args": list(a), "kwargs": kw}

    server.register_function(test)
    try:
        address = server.start(args.host, args.port)
    except OSError as exc:  # binding failed: port in use, no permission, bad host
        print(f"error: cannot listen on {host_port(args.host, args.port)}: {exc}", file=sys.stderr)
        return 1
    assert not isinstance(address, str)  # TCP, not a Unix socket path
    host, port = address
    print(f"server listening on {host_port(host, port)}")
    try:
        with RPCClient(host, port, timeout=10) as client:
            shown: list[tuple[str, Callable[[], Any]]] = [
                ("add(1, 2)", lambda: client.add(1, 2)),
                ('test("测试项", kw1="1")', lambda: client.test("测试项", kw1="1")),
                ('call("add", 0.5, 0.25)', lambda: client.call("add", 0.5, 0.25)),
                ("test('x' * 5000) length", lambda: len(client.test("x" * 5000)["args"][0])),
            ]
            for label, run in shown:
                print(f"{label} -> {run()!r}")
            with client.batch() as batch:
                first, second = batch.add(2, 3), batch.add(10, 20)
            print(f"batch add(2, 3), add(10, 20) -> {first.result()!r}, {second.result()!r}")
            try:
                client.missing()
            except RPCError as exc:
                print(f"missing() -> {type(exc).__name__}: {exc}")
    finally:
        server.shutdown()
    print("demo finished")
    return 0


def _load_target(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        # Refused before importing anything: import_module("api_mod.py") imports
        # api_mod, then fails with "'api_mod' is not a package".
        stem = os.path.splitext(os.path.basename(module_name))[0] or "MODULE"
        raise ImportError(
            f"give a module name ({stem}), not a file name: serve {stem}{':' + attr if attr else ''},"
            " run from the directory the file is in (or add it to PYTHONPATH)"
        )
    if not module_name or module_name.startswith("."):  # (import_module: ValueError, TypeError)
        raise ImportError("no module named: give MODULE or MODULE:OBJECT, MODULE an absolute name")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def _say(text: str) -> None:
    """Print a status line to stderr; a closed stderr (``serve ... 2>&1 | head -1``) is no failure of serve's.

    The line is lost, as the reader wanted; stderr then points at devnull (as
    run_command does for stdout), so that later lines and log records do not fail too.
    """
    if sys.stderr is None:  # (started with stderr closed: `2>&-`)
        return
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stderr.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # (a stderr without a file descriptor)
            pass


def _register_module(server: RPCServer, module: ModuleType) -> list[str]:
    # Only what the module defines (or lists in __all__): never what it imported,
    # so `from os import system` in a served module does not expose system().
    exported = getattr(module, "__all__", None)
    names = []
    for name, value in vars(module).items():
        public = name in exported if exported is not None else not name.startswith("_")
        own = getattr(value, "__module__", None) == module.__name__
        if public and (own or exported is not None) and inspect.isroutine(value):
            server.register_function(value, name)
            names.append(name)
    return names


def _serve(args: argparse.Namespace) -> int:
    try:
        context = server_context(args)
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        target = _load_target(args.target)
    except (ImportError, AttributeError) as exc:
        print(f"error: cannot load {args.target!r}: {exc}", file=sys.stderr)
        return 2
    from ._aio_server import RPCServer as AioServer  # noqa: PLC0415 - asyncio only for `serve`

    if isinstance(target, AioServer):
        print(
            f"error: {args.target!r} is an aio.RPCServer; `serve` runs the sync RPCServer: serve it"
            " with asyncio.run(server.serve_forever(host, port)), or make it a jsonrpc_mini.RPCServer",
            file=sys.stderr,
        )
        return 2
    if inspect.isclass(target):  # its methods would take the caller's first argument as self
        print(
            f"error: {args.target!r} is a class, whose methods need an instance: serve an instance"
            " the module makes (e.g. `calc = Calculator()`, then MODULE:calc)",
            file=sys.stderr,
        )
        return 2
    if isinstance(target, RPCServer) and args.debug and not target.options.debug:
        print(
            f"error: --debug cannot change {args.target!r}, an RPCServer made without it:"
            " make it with RPCServer(debug=True), or serve the module's functions",
            file=sys.stderr,
        )
        return 2
    server = target if isinstance(target, RPCServer) else RPCServer(debug=args.debug)
    if not isinstance(target, RPCServer):
        if inspect.isroutine(target):  # MODULE:FUNCTION: its public methods would be none
            names = [args.target.partition(":")[2]]
            server.register_function(target, names[0])
        else:
            register = _register_module if isinstance(target, ModuleType) else RPCServer.register_instance
            names = register(server, target)
        said = f"registered: {', '.join(sorted(names)) or '(nothing public)'}"
        if isinstance(target, ModuleType):  # `serve kvapp` where `serve kvapp:server` was meant?
            held = sorted(n for n, v in vars(target).items() if isinstance(v, RPCServer) and not n.startswith("_"))
            if held:
                said += f" (for an RPCServer's methods: serve {' or '.join(f'{args.target}:{n}' for n in held)})"
        _say(said)

    stopping: list[threading.Thread] = []

    def stop(signum: int, frame: object) -> None:
        thread = threading.Thread(target=server.shutdown, daemon=True)
        stopping.append(thread)
        thread.start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    where = path_text(args.path) if args.path else host_port(args.host, args.port)
    try:
        # loop() split in two, so that the port bound (--port 0 picks one) is shown.
        listener = server._listen(args.host, args.port, args.path, context)
        bound = listener.address
        shown = path_text(bound) if isinstance(bound, str) else host_port(*bound)
        tls = "" if context is None else " with mutual TLS" if args.cafile else " with TLS"
        _say(f"serving on {shown}{tls} (Ctrl-C to stop)")
        server._run_listener(listener)
    except OSError as exc:  # binding failed: port in use, no permission, bad path
        _say(f"error: cannot listen on {where}: {exc}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # loop() returns once shutdown() has stopped accepting; the calls in flight are
    # still being finished (up to shutdown_grace): exiting now would cut them off.
    try:
        for thread in stopping:
            thread.join(server.options.shutdown_grace + 10.0)
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
        return 130
    return 0


def _port(text: str) -> int:
    """``--port``: a TCP port number, 0 to 65535 (argparse reports anything else as a usage error)."""
    try:
        return check_port(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}") from None


def _host(text: str) -> str:
    """``--host``: a host name or an IP address (``[::1]`` is ``::1``), not empty (every interface, unasked).

    What no resolver can take is a usage error saying what is wrong, before
    anything is imported or bound: the resolver said "Name or service not known"
    after the import, and a name with an empty or too long label (``example..com``)
    ended in a UnicodeError traceback.
    """
    if text.startswith("[") and text.endswith("]"):  # an IPv6 address as written in HOST:PORT
        text = text[1:-1]
    if not text:
        raise argparse.ArgumentTypeError("is empty: give 127.0.0.1, or 0.0.0.0 or :: to listen on every interface")
    shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"
    host, colon, port = text.rpartition(":")
    if colon and port.isascii() and port.isdigit() and (":" not in host or host[:1] + host[-1:] == "[]"):
        raise argparse.ArgumentTypeError(f"takes a host, not HOST:PORT: --host {host.strip('[]')} --port {port}")
    if "/" in text:
        raise argparse.ArgumentTypeError(f"takes a host name or address, not a URL or path: {shown}")
    if "[" in text or "]" in text:
        raise argparse.ArgumentTypeError(f"{shown} has a bracket without its pair (an IPv6 address: ::1 or [::1])")
    if any(char.isspace() or not char.isprintable() for char in text):
        raise argparse.ArgumentTypeError(f"{shown} holds a space or a control character")
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown} is not an IPv6 address") from None
    elif text.replace(".", "").isdigit():
        try:
            socket.inet_aton(text)  # (as lenient as the resolver: 127.1 is 127.0.0.1)
        except OSError:
            raise argparse.ArgumentTypeError(f"{shown} is not an IPv4 address") from None
    else:
        try:
            text.encode("idna")  # (what the resolver is given)
        except UnicodeError as exc:
            reason = str(exc.__cause__ or exc).removeprefix("encoding with 'idna' codec failed (").rstrip(")")
            raise argparse.ArgumentTypeError(f"{shown} is not a host name: {reason}") from None
    return text


def _path(text: str) -> str:
    """``--path``: a Unix socket path, not empty (Linux would bind "" to a random abstract name)."""
    if not text:
        raise argparse.ArgumentTypeError("is empty: give a file system path")
    return text


def _timeout(text: str) -> float:
    """``--timeout``: a positive number of seconds (argparse reports anything else as a usage error)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0:  # (nan too)
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m jsonrpc_mini``."""
    parser = argparse.ArgumentParser(prog="python -m jsonrpc_mini", description="JSON-RPC 2.0 server, client and demo.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run a server and a client in one process and print the calls")
    demo.add_argument("--host", type=_host, default="127.0.0.1")
    demo.add_argument("--port", type=_port, default=0, help="0 picks a free port (default)")
    demo.set_defaults(run=_demo)

    serve = sub.add_parser("serve", help="serve the public functions of MODULE, or MODULE:OBJECT")
    serve.add_argument("target", metavar="MODULE[:OBJECT]", help="an RPCServer, or an object/module to expose")
    serve.add_argument("--host", type=_host, default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=5000, help="0 picks a free port (default 5000)")
    serve.add_argument("--path", type=_path, help="serve a Unix socket at this path instead of TCP")
    serve.add_argument("--debug", action="store_true", help="send tracebacks of failing handlers")
    add_server_options(serve)
    serve.set_defaults(run=_serve)

    call = sub.add_parser(
        "call",
        usage="%(prog)s [-h] [--timeout TIMEOUT] [--notify] [TLS options] (HOST:PORT | --path PATH) METHOD [ARG ...]",
        help="call METHOD on the server at HOST:PORT (or a Unix socket) and print the result as JSON",
    )
    # Every JSON number is an argument: argparse alone takes "-1e5" (but not "-1") for an option.
    call._negative_number_matcher = re.compile(r"^-\.?\d")
    call.add_argument(
        "words",
        nargs="+",
        metavar="HOST:PORT METHOD ARG",
        help="HOST:PORT (none with --path), METHOD, then ARGs: JSON values (bare words are strings);"
        " name=value for keywords",
    )
    call.add_argument("--path", help="call the server on this Unix socket (serve --path) instead of HOST:PORT")
    call.add_argument("--timeout", type=_timeout, default=10.0, help="seconds, more than 0 (default 10)")
    call.add_argument("--notify", action="store_true", help="send a notification (no reply)")
    add_client_options(call)
    call.set_defaults(run=call_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


# A write to stdout (a file) that cannot go on: full disk or quota, too large a file.
_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def run_command(main: Callable[[], int]) -> int:
    """Run ``main`` for ``python -m``: its exit status; quietly 1 when stdout's reader went away, 130 on Ctrl-C.

    ``call ... | head -1``: a write to a pipe whose reader has exited raises
    BrokenPipeError (Python ignores SIGPIPE). As the Python docs' note on SIGPIPE
    says, stdout then points at devnull, so that the flush at exit does not raise again.
    A full disk (``call ... > file``) is an ``error:`` line and 1 as well.
    """
    try:
        status = main()
        if sys.stdout is not None:  # (None when started with stdout closed: `>&-`)
            sys.stdout.flush()  # (here, not at exit, where its error is only printed)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        if exc.errno not in _OUTPUT_FULL:
            raise
        print(f"error: cannot write the output: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C during `call`, `demo` or `check`: the shell's 130, no traceback
        return 130
    return status


if __name__ == "__main__":
    sys.exit(run_command(main))
