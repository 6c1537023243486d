"""``_errors.detached``: the lost connection's cause kept as a copy must say what the exception said.

The copy is rebuilt from the exception's ``args`` (``copy.copy``): a class whose
``__init__`` formats its message from other arguments gets its ``args`` formatted
twice (``"bad bad 5"`` for ``"bad 5"``), so the ``__cause__`` of a ConnectionLost
named something else than what broke the connection. Such an exception is kept as
it is, as one that cannot be rebuilt at all.
"""

from __future__ import annotations

import errno

import pytest

from jsonrpc_mini._errors import detached


class Reformats(ConnectionError):
    """A transport's error that builds its message from a number."""

    def __init__(self, code: int) -> None:
        super().__init__(f"link failed with code {code}")


class KeywordOnly(ConnectionError):
    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")


def _caught(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # (so that it has a traceback)
        return caught


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        OSError(errno.ENOENT, "gone", "/a", None, "/b"),
        TimeoutError("timed out"),
        Reformats(5),
        KeywordOnly(code=3),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_the_kept_cause_says_what_the_exception_said(exc: BaseException) -> None:
    original = _caught(exc)
    kept = detached(original)
    assert type(kept) is type(original)
    assert kept.args == original.args
    assert str(kept) == str(original)


def test_a_copy_that_rebuilds_its_arguments_alike_has_no_traceback() -> None:
    original = _caught(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    kept = detached(original)
    assert kept is not original
    assert kept.__traceback__ is None
    assert original.__traceback__ is not None
