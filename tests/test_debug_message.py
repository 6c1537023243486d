"""With ``debug=True`` a failing handler's -32603 names the exception in its message too.

The traceback was only in ``data``: ``str(e)`` on the client read "Internal error in
'boom'" and said nothing of what went wrong. Debug mode sends the traceback anyway,
so the message now goes on with the exception's type and text (cut at 200
characters); without debug it stays "Internal error in 'boom'", nothing more.
"""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from _aio_support import run

from jsonrpc_mini import InternalError, RPCError, RPCServer, aio
from jsonrpc_mini.testing import aio_loopback, loopback

pytestmark = pytest.mark.timeout(60)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words")


def boom() -> NoReturn:
    raise ValueError("the disk is full")


def long_words() -> NoReturn:
    raise KeyError("k" * 500)


def silent() -> NoReturn:
    raise RuntimeError()


def unprintable() -> NoReturn:
    raise Unprintable()


def no_code() -> NoReturn:
    raise RPCError(None, "a local error")  # no integer code: answered as an internal error


HANDLERS = (boom, long_words, silent, unprintable, no_code)
EXPECTED = {
    "boom": "Internal error in 'boom': ValueError: the disk is full",
    "long_words": "Internal error in 'long_words': KeyError: '" + "k" * 199 + "...",
    "silent": "Internal error in 'silent': RuntimeError",
    "unprintable": "Internal error in 'unprintable': Unprintable",
    "no_code": "Internal error in 'no_code': RPCError: a local error",
}


def _sync_errors(debug: bool) -> dict[str, InternalError]:
    server = RPCServer(debug=debug)
    for handler in HANDLERS:
        server.register_function(handler)
    errors: dict[str, InternalError] = {}
    with loopback(server) as client:
        for handler in HANDLERS:
            with pytest.raises(InternalError) as info:
                client.call(handler.__name__)
            errors[handler.__name__] = info.value
    return errors


def _aio_errors(debug: bool) -> dict[str, InternalError]:
    server = aio.RPCServer(debug=debug)
    for handler in HANDLERS:
        server.register_function(handler)

    async def main() -> dict[str, InternalError]:
        errors: dict[str, InternalError] = {}
        async with aio_loopback(server) as client:
            for handler in HANDLERS:
                with pytest.raises(InternalError) as info:
                    await client.call(handler.__name__)
                errors[handler.__name__] = info.value
        return errors

    return run(main)


@pytest.mark.parametrize("errors_of", [_sync_errors, _aio_errors], ids=["sync", "aio"])
def test_debug_message_names_the_exception(errors_of: Any) -> None:
    errors = errors_of(True)
    for name, error in errors.items():
        assert error.message == EXPECTED[name]
        assert str(error) == f"{name}: [-32603] {EXPECTED[name]}"
        assert error.data["type"] == EXPECTED[name].split(": ")[1]
        assert "Traceback (most recent call last)" in error.data["traceback"]


@pytest.mark.parametrize("errors_of", [_sync_errors, _aio_errors], ids=["sync", "aio"])
def test_without_debug_the_message_says_nothing_more(errors_of: Any) -> None:
    errors = errors_of(False)
    for name, error in errors.items():
        assert error.message == f"Internal error in {name!r}"
        assert error.data is None


def test_a_batch_member_gets_the_debug_message_too() -> None:
    server = RPCServer(debug=True)
    server.register_function(boom)
    server.register_function(lambda: 1, name="one")
    with loopback(server) as client:
        with client.batch() as batch:
            failed = batch.boom()
            fine = batch.one()
        with pytest.raises(InternalError) as info:
            failed.result()
    assert fine.result() == 1
    assert info.value.message == EXPECTED["boom"]
