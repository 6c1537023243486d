"""``serve --host`` / ``demo --host``: a host no resolver can take is a usage error saying what is wrong.

They were taken as given, the target imported, then listening failed with the
resolver's "Name or service not known" on an address shown oddly
(``--host 127.0.0.1:5000``: "cannot listen on [127.0.0.1:5000]:0"), exit 1; a name
with an empty or too long label (``example..com``) ended in a UnicodeError
traceback. Host names the resolver may know (``ho_st``, ``localhost.``) and every
address form it takes (``127.1``, ``[::1]``) are still passed on.
"""

from __future__ import annotations

import pytest

from jsonrpc_mini.__main__ import build_parser, main

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("127.0.0.1:5000", "takes a host, not HOST:PORT: --host 127.0.0.1 --port 5000"),
        ("localhost:80", "takes a host, not HOST:PORT: --host localhost --port 80"),
        ("[::1]:5000", "takes a host, not HOST:PORT: --host ::1 --port 5000"),
        ("http://localhost", "takes a host name or address, not a URL or path: 'http://localhost'"),
        ("[::1", "'[::1' has a bracket without its pair (an IPv6 address: ::1 or [::1])"),
        ("::1]", "'::1]' has a bracket without its pair (an IPv6 address: ::1 or [::1])"),
        ("a b", "'a b' holds a space or a control character"),
        ("a\nb", "'a\\nb' holds a space or a control character"),
        ("1::2::3", "'1::2::3' is not an IPv6 address"),
        ("::g", "'::g' is not an IPv6 address"),
        ("256.1.1.1", "'256.1.1.1' is not an IPv4 address"),
        ("1.2.3.4.5", "'1.2.3.4.5' is not an IPv4 address"),
        ("example..com", "'example..com' is not a host name: label empty or too long"),
        ("x" * 64 + ".com", f"{'x' * 40!r}... (68 characters) is not a host name: label empty or too long"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_malformed_host_is_a_usage_error(
    command: str, host: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "math", "--host", host] if command == "serve" else ["demo", "--host", host]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--port", "0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(f"error: argument --host: {said}"), err
    assert "Traceback" not in err and "registered:" not in err and "cannot listen" not in err


@pytest.mark.parametrize(
    ("host", "taken"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.1"),  # (the resolver reads it as 127.0.0.1)
        ("[127.0.0.1]", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("fe80::1%lo", "fe80::1%lo"),
        ("0.0.0.0", "0.0.0.0"),
        ("::", "::"),
        ("localhost", "localhost"),
        ("localhost.", "localhost."),
        ("ho_st", "ho_st"),  # (a name /etc/hosts may hold)
        ("bücher.example", "bücher.example"),
    ],
)
def test_hosts_the_resolver_may_take_are_passed_on(host: str, taken: str) -> None:
    assert build_parser().parse_args(["serve", "math", "--host", host]).host == taken
    assert build_parser().parse_args(["demo", "--host", host]).host == taken
