"""A batch member's result object is also what waits for its reply.

The sync client makes each member's BatchResult the waiter the connection fills
(one object per call): it must behave as a BatchResult in every state (queued,
sent, answered, failed), leave no reference cycle behind, and a reply line must
be matched to the members exactly as ``success_id``/``parse_reply`` would.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from _driver_helpers import WAIT, serving
from hypothesis import given
from hypothesis import strategies as st

from jsonrpc_mini import BatchResult, ConnectionLost, MethodNotFound, RPCClient, RPCError, RPCServer
from jsonrpc_mini._batch import BatchBuilder
from jsonrpc_mini._client_waiter import _QueuedWaiter, _Waiter
from jsonrpc_mini._codec import plain_successes, success_id

pytestmark = pytest.mark.timeout(60)


def make_server() -> RPCServer:
    s = RPCServer()
    s.register_function(lambda a, b: a + b, name="add")
    return s


def test_a_sync_members_result_is_a_batch_result_in_every_state() -> None:
    with serving(make_server()) as address, RPCClient(*address, timeout=WAIT) as c:
        with c.batch() as b:
            ok, missing = b.add(1, 2), b.nope()
            assert isinstance(ok, BatchResult) and ok.method == "add"
            assert repr(ok) == "<BatchResult 'add' pending>"
            with pytest.raises(RPCError, match="add: the batch has not been sent yet"):
                ok.result()
        assert repr(ok) == "<BatchResult 'add' ready>"
        assert ok.result() == 3 and ok.result() == 3  # asked again: the same answer
        with pytest.raises(MethodNotFound, match="nope"):
            missing.result()
        c.close()
        with pytest.raises(ConnectionLost), c.batch() as b:  # the send itself fails
            late = b.add(1, 2)
        # The member raises the send's error, naming itself (it said "not been sent
        # yet (leave the with block first)", with the block left).
        with pytest.raises(ConnectionLost, match=r"^add: the client was closed$") as info:
            late.result()
        assert info.value.request_sent is False


def test_a_sync_batch_leaves_no_reference_cycles() -> None:
    # A member holding itself (as its own outcome) would be a cycle per call, for
    # the garbage collector to find.
    with serving(make_server()) as address, RPCClient(*address, timeout=WAIT) as c:
        c.add(0, 0)
        gc.collect()
        gc.disable()
        try:
            with c.batch() as b:
                results = [b.add(i, 1) for i in range(500)]
            assert [r.result() for r in results] == list(range(1, 501))
            del b, results
            found = gc.collect()
        finally:
            gc.enable()
    assert found < 100, found


class Held(BatchResult):
    """A result that holds its outcome itself, as the sync client's are."""

    __slots__ = ("value",)

    def result(self) -> Any:
        return self.value

    @property
    def _sent(self) -> bool:
        return True


def test_a_sender_may_answer_with_the_results_themselves() -> None:
    def send(calls: Any) -> list[Any]:
        results = calls.answered()
        for n, result in enumerate(results):
            result.value = n * 10
        return results

    with BatchBuilder(send, make_result=Held) as b:
        first = b.a()
        b.notify("n")
        second = b.call("b", 1)
    assert (type(first), first.result(), second.result()) == (Held, 0, 10)
    assert repr(second) == "<BatchResult 'b' ready>"

    short = BatchBuilder(lambda calls: calls.answered()[:1], make_result=Held)
    short.a()
    short.b()
    with pytest.raises(ValueError, match="answered 1 of 2"):
        short.send()


def test_a_waiters_method_and_value_are_fields_of_their_own_in_batch_results_slots() -> None:
    # A _Waiter keeps ``method`` and ``value`` in BatchResult's two slots (speed: no slot
    # left empty in every waiter): each must still be a field of its own, and
    # BatchResult's own ``method`` property must read the waiter's method.
    waiter = _Waiter("m", 7)
    assert (waiter.method, waiter.value, waiter.id) == ("m", None, 7)
    waiter.value = 5
    waiter.error = None
    assert waiter.method == "m" and BatchResult.method.fget(waiter) == "m"  # type: ignore[attr-defined]
    assert repr(waiter) == "<BatchResult 'm' pending>"
    waiter.done = True
    assert waiter.result() == 5 and waiter.value == 5 and repr(waiter) == "<BatchResult 'm' ready>"
    # Five slots of its own on top of BatchResult's three, no more.
    slot = (BatchResult.__basicsize__ - object.__basicsize__) // 3
    assert _Waiter.__basicsize__ == BatchResult.__basicsize__ + 5 * slot


def test_a_sync_builders_members_queue_themselves_as_the_general_way_queues() -> None:
    # The sync client's ``b.name(...)`` makes a _QueuedWaiter that queues its own call
    # (speed: one Python frame); the general way (_batch._queue_call making a
    # _Waiter) must give the same queue and the same fresh waiters.
    def queue_all(b: Any) -> list[Any]:
        results = [b.m(1, 2), b.m(), b.m(a=1, b=[2]), b.m([1], {"a": 1}), b.calc.m(3), b.call("c", x=1)]
        b.notify("n", 1)
        return results

    client = RPCClient()  # not connected: queueing needs no connection
    fast = client.batch()
    general = BatchBuilder(lambda calls: [], make_result=_Waiter)
    fast_results, general_results = queue_all(fast), queue_all(general)
    assert type(fast_results[0]) is _QueuedWaiter and type(general_results[0]) is _Waiter
    for b in (fast, general):
        with pytest.raises(TypeError, match="collides"):
            b.m(1, a=1, **{"0": 2})  # queues nothing
    queues = [[(entry._method, entry._params) for entry in b._queued.entries] for b in (fast, general)]
    assert queues[0] == queues[1]
    assert [method for method, _ in queues[0]] == ["m", "m", "m", "m", "calc.m", "c", "n"]
    assert [type(p) for _, p in queues[0]] == [tuple, type(None), dict, tuple, tuple, dict, list]

    def fields(result: Any) -> dict[str, Any]:
        return {name: getattr(result, name) for name in ("done", "error", "method")}

    assert [fields(r) for r in fast_results] == [fields(r) for r in general_results]
    # A fast member's ``id``, ``value``, ``signal`` and ``waiting`` stay empty until set
    # (speed: see _QueuedWaiter); the general way's are None and False. Either way
    # result() says the batch is not sent yet.
    fast_members = [r for r in fast_results if type(r) is _QueuedWaiter]
    assert len(fast_members) == 4  # (b.calc.m and b.call go the general way)
    for member in fast_members:
        for name in ("id", "value", "signal", "waiting"):
            with pytest.raises(AttributeError):
                getattr(member, name)
    for r in fast_results + general_results:
        with pytest.raises(RPCError, match="not been sent"):
            r.result()
    assert fast._queued.entries[:-1] == fast_results  # each queued as itself (then the notification)
    fast._take_queued()
    with pytest.raises(RPCError, match="already sent"):
        fast.m(1)
    assert len(fast._queued) == len(fast._queued.entries) == 7


# -- a reply line's plain successes ------------------------------------------------

replies = st.one_of(
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": st.integers(0, 5), "result": st.integers()}),
    st.fixed_dictionaries(
        {"jsonrpc": st.sampled_from(["2.0", "1.0"]), "id": st.one_of(st.integers(), st.text(max_size=2), st.none())},
        optional={"result": st.none(), "error": st.just({"code": 1}), "method": st.just("m")},
    ),
    st.sampled_from([None, 1, "x", [], [{"jsonrpc": "2.0", "id": 1, "result": 1}]]),
)


@given(st.lists(replies, max_size=12), st.integers(0, 12))
def test_plain_successes_run_as_far_as_success_id_finds_ids(values: list[Any], start: int) -> None:
    start = min(start, len(values))
    end = start
    while end < len(values) and success_id(values[end]) is not None:
        end += 1
    assert plain_successes(values, start) == end
