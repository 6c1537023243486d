"""unix_mode must be permission bits: an int from 0 to 0o777, refused at construction (review15 N14).

Before, unix_mode=600 (the decimal slip for 0o600) made the socket file mode 0o1130,
-1 made it 0o7777 (world-writable), True 0o001, and "600" failed only at start().
"""

from __future__ import annotations

from typing import Any

import pytest

from jsonrpc_mini import RPCServer, ServerOptions, aio

BAD = [600, 0o1000, -1, True, False, "600", "0o600", 0o600 + 0.0]
GOOD = [None, 0, 0o600, 0o660, 0o777]


@pytest.mark.parametrize("make", [RPCServer, aio.RPCServer, ServerOptions], ids=["sync", "aio", "options"])
@pytest.mark.parametrize("mode", BAD, ids=repr)
def test_a_mode_that_is_not_permission_bits_is_refused_by_name(make: Any, mode: Any) -> None:
    with pytest.raises(ValueError, match=r"unix_mode must be an int from 0 to 0o777 such as 0o600 \(or None\), not "):
        make(unix_mode=mode)
    with pytest.raises(ValueError, match=f"not {mode!r}$"):
        make(unix_mode=mode)


@pytest.mark.parametrize("make", [RPCServer, aio.RPCServer, ServerOptions], ids=["sync", "aio", "options"])
@pytest.mark.parametrize("mode", GOOD, ids=repr)
def test_permission_bits_are_kept(make: Any, mode: Any) -> None:
    made = make(unix_mode=mode)
    options = made if isinstance(made, ServerOptions) else made.options
    assert options.unix_mode == mode
