"""The sync server's batches: members run straight from their JSON objects.

A batch of 1,000 calls used to make a Request per member (``parse_request``)
and run each through the session's per-call path; here a valid call with array
or object params and a string or integer id is checked with the same rules as
``parse_request``'s fast case and run directly, and its success reply is a plain
JSON object (as ``ServerConnection.encode_replies`` accepts). Every other member
(an invalid one, a notification, no params, another kind of id, a server
draining for shutdown) takes the general path, so its reply is exactly what it
was.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ._codec import ErrorResponse, Request, Response, parse_request
from ._dispatch import PLAIN_RESULTS, await_result, error_response, outcome_response

if TYPE_CHECKING:
    from ._session_calls import SessionCalls

__all__ = ["batch_replies"]

_MISSING: Final = object()


def batch_replies(session: SessionCalls, values: list[Any]) -> list[dict[str, Any] | Response | ErrorResponse]:
    """Run the members of a batch in order; their replies (none for notifications).

    ``values`` are the members as received; an invalid one gets its -32600 error
    in its place. Successes are JSON objects, errors ErrorResponse.
    """
    server = session.server
    resolve = server.resolve
    registered = server.handlers  # the handlers registered now, by name
    # method -> number of arguments -> its handler, for array params that bound: the
    # check depends on the count alone. Speed: resolve once per kind of call, not per
    # member; the handler is looked up again each time, in case one re-registered it.
    # (Nested, not keyed by a (method, count) tuple: no object made per member.)
    bound: dict[str, dict[int, Callable[..., Any]]] = {}
    debug = session.server.options.debug
    replies: list[dict[str, Any] | Response | ErrorResponse] = []
    append = replies.append
    for value in values:
        # parse_request's fast case (a valid call with array or object params), without
        # making a Request. Speed: subscripts in one try (a missing member, e.g. a
        # notification's id or absent params, raises KeyError; a member that is no
        # object, TypeError) in place of a type test and get() calls: the general path
        # takes those members. ~0.3k fewer instructions per member than testing each step.
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
        if plain and not session.draining:  # (draining read per member, as the general path does)
            try:
                if kind is list:
                    try:
                        function = bound[method][len(params)]
                        if registered[method] is not function:
                            raise KeyError(method)  # registered again since: resolve again
                    except KeyError:  # (also: not resolved yet, or no longer registered)
                        function = bound.setdefault(method, {})[len(params)] = resolve(method, params)[0]
                    result = function(*params)
                else:
                    function, args, kwargs = resolve(method, params)
                    result = function(*args, **kwargs)
                if type(result) not in PLAIN_RESULTS and inspect.isawaitable(result):
                    result = asyncio.run(await_result(result))
            except BaseException as exc:  # (see Session.execute)
                append(error_response(id_, exc, method, debug))
                continue
            append({"jsonrpc": "2.0", "id": id_, "result": result})
            continue
        reply = _general_reply(session, value, debug)
        if reply is not None:
            append(reply)
    return replies


def _general_reply(session: SessionCalls, value: Any, debug: bool) -> dict[str, Any] | Response | ErrorResponse | None:
    """The reply for one member as the per-call path makes it (None for a notification)."""
    item = parse_request(value)
    if isinstance(item, ErrorResponse):
        return item
    result, exc = session.execute(item)
    if exc is None and type(item) is Request:
        return {"jsonrpc": "2.0", "id": item.id, "result": result}
    return outcome_response(item, result, exc, debug=debug)
