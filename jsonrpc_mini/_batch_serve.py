"""The sync server's batches: members run straight from their JSON objects.

A batch of 1,000 calls used to make a Request per member (``parse_request``)
and run each through the session's per-call path; here a valid call with array
or object params and a string or integer id is checked with the same rules as
``parse_request``'s fast case and run directly. Every other member (an invalid
one, a notification, no params, another kind of id, a server draining for
shutdown) takes the general path, so its reply is exactly what it was.

Speed: a success is kept as its id and result, not as a reply object (a dict
costs ~1.3k instructions to make and free, and orjson ~0.7k more to walk). A
batch whose members all succeed with integer results (1,000 ``add`` calls) is
written by ``ServerConnection.encode_int_results`` without any; other batches
get their reply objects made at the end.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Final

from ._codec import ErrorResponse, Request, Response, decoded_keys, parse_request
from ._dispatch import PLAIN_RESULTS, await_result, error_response, outcome_response

if TYPE_CHECKING:
    from ._session_calls import SessionCalls

__all__ = ["batch_reply"]


def batch_reply(session: SessionCalls, values: list[Any]) -> bytes | None:
    """Run the members of a batch in order; the framed reply array (None if every member was a notification).

    ``values`` are the members as received; an invalid one gets its -32600 error
    in its place.
    """
    server = session.server
    # name -> (handler, fewest, most) of the methods a list of fewest..most arguments
    # binds to for sure: resolve's usual case. Live: a handler registered again during
    # the batch is used from the next member on, as on the general path.
    positional = server.plain_handlers
    debug = server.options.debug
    # The members' ids and results, in order; a member with another reply (an error)
    # has None in both and its reply in ``others`` under its position. Notifications
    # have no place.
    ids: list[Any] = []
    results: list[Any] = []
    others: dict[int, Response | ErrorResponse] = {}
    ints = True  # every result so far is an int (see encode_int_results)
    add_id = ids.append
    add_result = results.append
    params_key, id_key, jsonrpc_key, method_key = decoded_keys(values[0] if values else None, _KEYS)
    for value in values:
        # The usual member: a valid call of a method that binds a list of so many
        # arguments for sure (resolve's usual case), with an integer or string id.
        # Speed: subscripts in one try (a missing member, e.g. a notification's id or
        # absent params, raises KeyError, as does a method not in ``positional``; a
        # member that is no object, or a method that cannot be a key, TypeError), in
        # place of type tests and get() calls; no test that the method is a string:
        # only a string names a method. The tests are an ``if``, not a boolean
        # assigned: only a test followed by its jump is specialized (~0.25k
        # instructions less per member). Every other member takes _other_member.
        # The ``if`` is negated so that the other member's branch comes first: the
        # tests then jump over that short branch, never over the usual member's
        # longer one. A jump past 255 code units takes an EXTENDED_ARG first, and a
        # comparison not followed by its jump itself stays unspecialized (the
        # ``<= most`` cost ~0.17k instructions more per member that way).
        try:
            params = value[params_key]
            id_ = value[id_key]
            jsonrpc = value[jsonrpc_key]
            function, fewest, most = positional[value[method_key]]
        except (KeyError, TypeError):
            params = None  # (not a list: the member takes _other_member)
        if not (
            type(params) is list
            and fewest <= (count := len(params)) <= most
            and (type(id_) is int or type(id_) is str)
            and jsonrpc == "2.0"
            and not session.draining  # (read per member, as the general path does)
        ):
            reply = _other_member(session, value, debug)
            if reply is None:
                continue  # a notification
            if isinstance(reply, dict):  # a success, as its JSON object
                id_, result = reply["id"], reply["result"]
                ints = ints and type(result) is int
            else:
                others[len(ids)] = reply
                id_ = result = None
        else:
            try:
                # Speed: the usual counts of arguments are passed one by one. A call
                # with *params makes a tuple of the list and takes the generic call
                # path (CALL_FUNCTION_EX: PyObject_Call, a new C-level frame for a
                # Python function); a plain call is specialized (a Python function's
                # frame is pushed in place): ~0.16k instructions less per member.
                if count == 2:
                    result = function(params[0], params[1])
                elif count == 1:
                    result = function(params[0])
                else:
                    result = function(*params)
                if type(result) is not int:  # (tested first: the one type the int writer takes)
                    ints = False
                    if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
                        result = asyncio.run(await_result(result))
            except BaseException as exc:  # (see Session.execute)
                others[len(ids)] = error_response(id_, exc, value["method"], debug, session)
                id_ = result = None
        add_id(id_)
        add_result(result)
    proto = session._proto
    if not ids:
        return None
    if ints and not others:
        return proto.encode_int_results(ids, results)
    replies: list[dict[str, Any] | Response | ErrorResponse] = [
        {"jsonrpc": "2.0", "id": id_, "result": result} for id_, result in zip(ids, results, strict=True)
    ]
    for position, reply in others.items():
        replies[position] = reply
    return proto.encode_replies(replies)


_KEYS: Final = ("params", "id", "jsonrpc", "method")  # a usual member's (see decoded_keys)


def _other_member(session: SessionCalls, value: Any, debug: bool) -> dict[str, Any] | Response | ErrorResponse | None:
    """The reply for a member ``batch_reply`` does not run itself (None for a notification)."""
    # parse_request's fast case, without making a Request: a valid call with array
    # or object params and an integer or string id.
    try:
        method = value["method"]
        id_ = value["id"]
        params = value["params"]
        kind = type(params)
        plain = (
            value["jsonrpc"] == "2.0"
            and type(method) is str
            and (kind is list or kind is dict)
            and (type(id_) is int or type(id_) is str)
        )
    except (KeyError, TypeError):
        plain = False
    if plain and not session.draining:
        try:
            function, args, kwargs = session.server.resolve(method, params)
            result = function(*args, **kwargs)
            if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
                result = asyncio.run(await_result(result))
        except BaseException as error:  # (see Session.execute)
            return error_response(id_, error, method, debug, session)
        return {"jsonrpc": "2.0", "id": id_, "result": result}
    item = parse_request(value)
    if isinstance(item, ErrorResponse):
        return item
    result, exc = session.execute(item)
    if exc is None and type(item) is Request:
        return {"jsonrpc": "2.0", "id": item.id, "result": result}
    return outcome_response(item, result, exc, debug=debug, peer=session)
