"""``python -m jsonrpc_mini.testing check HOST:PORT``: probe a JSON-RPC 2.0 server (``--tls``: over TLS).

Exit status 0 when every probe passed (warnings allowed), 1 when one failed, 2 on
a usage error.
"""

from __future__ import annotations

import argparse
import sys

from ..__main__ import _timeout, run_command
from .._cli_tls import CLIUsage, add_client_options, client_tls
from .._remote import LONGEST_WAIT
from ._check import check, check_arguments
from ._probes import PROBES

__all__ = ["main", "parse_address"]


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def probe_timeout(text: str) -> float:
    """``--timeout``: positive seconds (as ``python -m jsonrpc_mini call``), and finite: a usage error else."""
    seconds = _timeout(text)
    if not seconds <= LONGEST_WAIT:
        raise argparse.ArgumentTypeError(f"must be at most {LONGEST_WAIT} seconds (about 24 days), not {text!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m jsonrpc_mini.testing",
        description="jsonrpc_mini test kit tools",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser(
        "check",
        help="probe any JSON-RPC 2.0 server over TCP for spec conformance and fault tolerance",
    )
    cmd.add_argument("address", type=parse_address, metavar="HOST:PORT")
    cmd.add_argument(
        "--timeout", type=probe_timeout, default=5.0, help="seconds to wait for each reply, more than 0 (default 5)"
    )
    cmd.add_argument("--echo-method", metavar="NAME", help="a method that returns its one argument (large replies)")
    cmd.add_argument("--seed", type=int, default=0, help="seed for chunk sizes and payloads (default 0)")
    cmd.add_argument("--only", action="append", metavar="PROBE", help="run only this probe (repeatable)")
    add_client_options(cmd)
    args = parser.parse_args(argv)
    host, port = args.address
    try:  # (the names check() itself refuses: a usage error here)
        check_arguments(args.timeout, args.only, [name for name, _ in PROBES], port=port)
        tls = client_tls(args)
    except (ValueError, CLIUsage) as exc:
        parser.error(str(exc))
    report = check(
        host, port, timeout=args.timeout, echo_method=args.echo_method, seed=args.seed, only=args.only, **tls
    )
    sys.stdout.write(report.render() + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
