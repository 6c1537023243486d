"""The one-step line paths remember that the framer is between values; bytes fed to it end that.

After a line taken in one step the framer is untouched, so the next line is taken
without asking it again. Once bytes go to the framer (``receive_data``) a line may
be the rest of a message it holds: it must then go to the framer, whatever the
earlier lines did.
"""

from __future__ import annotations

import pytest
from _driver_helpers import CODECS
from test_protocol import drain

from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Call, Reply, ServerConnection

REQUEST_1 = b'{"jsonrpc":"2.0","method":"m","params":[1],"id":1}\n'
REQUEST_2 = b'{"jsonrpc":"2.0","method":"n","params":[2],"id":2}\n'
# A request cut inside a string: a whole line that comes next goes on with it.
CUT_REQUEST = b'{"jsonrpc":"2.0","method":"m","params":["abc'
REPLY_1 = b'{"jsonrpc":"2.0","id":1,"result":1}\n'
REPLY_2 = b'{"jsonrpc":"2.0","id":2,"result":2}\n'
CUT_REPLY = b'{"jsonrpc":"2.0","id":3,"result":"abc'


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_server_line_after_bytes_fed_goes_to_the_framer(use_orjson: bool) -> None:
    conn = ServerConnection(framing="newline", codec=JsonCodec(use_orjson=use_orjson))
    assert conn.receive_plain_call(REQUEST_1) == {"jsonrpc": "2.0", "method": "m", "params": [1], "id": 1}
    assert conn.receive_plain_call(REQUEST_2) == {"jsonrpc": "2.0", "method": "n", "params": [2], "id": 2}
    conn.receive_data(CUT_REQUEST)
    assert drain(conn) == []
    assert conn.receive_plain_call(REQUEST_2) is None  # not request n: the rest of the cut line
    events = drain(conn)
    assert len(events) == 1 and isinstance(events[0], Reply), events
    assert b'"code":-32700' in events[0].data.replace(b" ", b"")  # the joined line is not JSON
    # The framer is between values again: lines are taken in one step again.
    assert conn.receive_plain_call(REQUEST_1) == {"jsonrpc": "2.0", "method": "m", "params": [1], "id": 1}
    assert drain(conn) == []


@pytest.mark.parametrize("use_orjson", CODECS)
def test_a_client_line_after_bytes_fed_goes_to_the_framer(use_orjson: bool) -> None:
    conn = ClientConnection(codec=JsonCodec(use_orjson=use_orjson))
    assert conn.decode_line(REPLY_1) == {"jsonrpc": "2.0", "id": 1, "result": 1}
    assert conn.decode_lines(REPLY_2, 64) == ([{"jsonrpc": "2.0", "id": 2, "result": 2}], len(REPLY_2))
    conn.receive_data(CUT_REPLY)
    assert drain(conn) == []
    assert conn.decode_line(REPLY_2) is None
    assert conn.decode_lines(REPLY_2, 64) == ([], 0)
    conn.receive_data(REPLY_2)
    assert drain(conn) != []  # the framer reads the joined line (here: what it makes of it)
    assert conn.decode_line(REPLY_1) == {"jsonrpc": "2.0", "id": 1, "result": 1}


def test_content_length_connections_take_no_line_in_one_step() -> None:
    conn = ServerConnection(framing="content-length")
    assert conn.receive_plain_call(REQUEST_1) is None
    auto = ServerConnection()  # auto: the first bytes choose the framing
    assert auto.receive_plain_call(REQUEST_1) is None  # fed: it picks newline framing
    assert [type(event) for event in drain(auto)] == [Call]
    assert auto.receive_plain_call(REQUEST_2) == {"jsonrpc": "2.0", "method": "n", "params": [2], "id": 2}
