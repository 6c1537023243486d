"""Which batch a client's reply array answers, and what it leaves out of it.

JSON-RPC 2.0 answers a batch with one array. :class:`_BatchReplies` (a base of
``ClientConnection``) remembers the batches sent and not answered yet, matches
each array to the batch its ids name, and gives every member it leaves out a
:class:`Violation` instead of a reply that will not come. :class:`BatchAnswer` is
an array that answers one batch whole and in order, for a consumer that takes it
in one piece (``whole_batches``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from ._codec import ErrorResponse, Id, parse_response
from ._events import Violation

__all__ = ["BatchAnswer"]

_ID = operator.itemgetter("id")


class BatchAnswer:
    """An array that may answer one batch whole, each member once and in the order sent (see ``whole_batches``).

    ``first``: the batch's first id, the first member's; ``members``: the array's
    members, as many as the batch has calls, unchecked. Member ``i`` should carry
    the batch's ``i``-th id: its consumer checks that as it takes each member
    (speed: see ``_batch_reply``), and gives an array that does not to
    :meth:`ClientConnection.batch_events`, which makes of it what the core makes
    of an array without ``whole_batches``. Check each member with ``parse_reply``.
    """

    __slots__ = ("first", "members")

    def __init__(self, first: Id, members: list[Any]) -> None:
        self.first = first
        self.members = members


def _unanswered(id_: Id) -> Violation:
    """The event of a batch member that the array answering its batch leaves out."""
    return Violation(
        f"the batch's reply array has no response for this call (id {id_!r});"
        " one array answers a whole batch, so none will come",
        id=id_,
    )


class _BatchReplies:
    """The batches a client connection sent and not answered yet, and the arrays that answer them.

    The connection sets ``_batches`` (a dict of each batch's ids by its first id)
    in its ``__init__``. Only single dict operations touch it: a sync client's
    caller may add or forget a batch while another thread reads.
    """

    _batches: dict[Id, list[Id]]

    def expect_batch(self, ids: Sequence[Id]) -> None:
        """Remember that the requests ``ids`` go out as one batch (call before sending it).

        JSON-RPC 2.0 answers a batch with one array. Once an array answering any of
        ``ids`` arrives, every member of the batch it leaves out gets a
        :class:`Violation` with its id, right after the array's replies: its
        answer will not come, so its call fails instead of waiting. Which batch an
        array answers is told by the ids in it (ids are unique per connection), so
        batches may be pending side by side. An array that answers no id of a
        batch (an empty one, one answering notifications) ends nothing. The
        batch is forgotten when an array answers it, or by :meth:`forget_batch`.
        A list of ids is kept as it is: do not change it afterwards.
        """
        if ids:
            self._batches[ids[0]] = ids if type(ids) is list else list(ids)

    def forget_batch(self, ids: Sequence[Id]) -> None:
        """Stop expecting the batch ``ids`` (the caller stopped waiting: done, timed out, failed)."""
        if ids and self._batches:
            self._batches.pop(ids[0], None)

    def _batch_reply(self, members: list[Any], whole: bool = False) -> list[Any]:
        """An array's members, followed by the events of the members of the batches it answers that it leaves out.

        ``whole``: an array as long as the batch its first member answers is given
        as one :class:`BatchAnswer` (the usual batch reply: see ``whole_batches``),
        its ids left for its consumer to check.

        Each such member gets a :class:`Violation` (see :meth:`expect_batch`); the
        batches it answers are forgotten. When exactly one is left out and the
        array holds exactly one error with id null (a member the server could not
        read), that error is the member's: it gets it as its ErrorResponse (the
        error's place in the array is dropped), as a lone call gets such an error.
        :meth:`parse_reply` passes these events through.
        """
        batches = self._batches
        if 1 in batches and any(type(member) is dict and type(member.get("id")) is bool for member in members):
            # JSON true equals 1 in Python: the passes below, and a whole array's
            # consumer, would take a member with the id true for call 1's reply. No
            # call has that id. Ids count from 1 (false, equal to 0, matches none), so
            # only while the batch holding id 1 is expected can this happen, and only
            # then is this looked for. The general way leaves such a member unmatched.
            return self._by_member(members)
        if whole:
            # Speed: the usual array answers one batch whole and in order. With
            # ``whole``, an array as long as the batch its first member answers is
            # given as a BatchAnswer without a pass over its ids here (~0.45M
            # instructions for 1,000 members): its consumer, which takes each member
            # in a loop of its own anyway, compares each member's id with the
            # batch's there (~0.13M), and hands an array that does not match back to
            # batch_events. The batch stays expected until then (see batch_events)
            # or until its caller forgets it.
            try:
                first = members[0]["id"]
                batch = batches.get(first)
            except (KeyError, TypeError, IndexError):
                batch = None
            if batch is not None and len(batch) == len(members):
                return [BatchAnswer(first, members)]
        # Speed: the usual array answers one batch whole, each member once, most often
        # in order: checked in a few C-level passes (a batch of 1,000: ~30 us in order).
        # A member that is no object, has no id or an unhashable one raises: the
        # general way looks at it. (Here ids compare as Python values: an id 1.0
        # stands for 1, as the drivers match it too; ``true`` cannot reach here, see
        # above. A request from the server carrying a member's id counts as its
        # answer here: that call then waits, as before this check.)
        try:
            ids = list(map(_ID, members))
            batch = batches.get(ids[0])
            if batch is not None and ids == batch:  # in order
                batches.pop(ids[0], None)
                return members
            answered = set(ids)
        except (KeyError, TypeError):
            pass
        else:
            if batch is None:  # (out of order: the batch whose ids it holds, if only one)
                touched = [other for other in list(batches.values()) if not answered.isdisjoint(other)]
                batch = touched[0] if len(touched) == 1 else None
            if batch is not None and len(batch) == len(answered) == len(ids) and answered.issuperset(batch):
                batches.pop(batch[0], None)
                return members
        return self._by_member(members)

    def _by_member(self, members: list[Any]) -> list[Any]:
        """``_batch_reply``'s general way: ``members``, then events for the batches' members they leave out."""
        batches = self._batches
        # The ids of the replies in the array (objects without "method"; integer,
        # string or float ids, as the drivers match them), and every batch they
        # touch, in the order they were sent.
        answered = {
            id_
            for member in members
            if type(member) is dict
            and "method" not in member
            and (type(id_ := member.get("id")) is int or type(id_) is str or type(id_) is float)
        }
        unanswered: list[Id] = []
        for batch in list(batches.values()):  # (a copy: another thread may add or forget one)
            if not answered.isdisjoint(batch):
                batches.pop(batch[0], None)
                unanswered.extend(id_ for id_ in batch if id_ not in answered)
        if not unanswered:
            return members
        if len(unanswered) == 1:
            errors = [
                index
                for index, member in enumerate(members)
                if type(member) is dict and member.get("id") is None and "error" in member and "method" not in member
            ]
            if len(errors) == 1:
                reply = parse_response(members[errors[0]])
                if isinstance(reply, ErrorResponse):
                    rest = members[: errors[0]] + members[errors[0] + 1 :]
                    return [*rest, ErrorResponse(unanswered[0], reply.error)]
        return [*members, *map(_unanswered, unanswered)]

    def batch_events(self, answer: BatchAnswer) -> list[Any]:
        """What a :class:`BatchAnswer`'s array gives as members, for a consumer that will not take it whole.

        The same as without ``whole_batches``: the array's members, then the events
        of the members of the batches it answers that it leaves out (see
        :meth:`expect_batch`); those batches are forgotten.
        """
        return self._batch_reply(answer.members)

    def forget_answered(self, answer: BatchAnswer) -> None:
        """A consumer took ``answer`` whole: its batch is answered, no longer expected."""
        self._batches.pop(answer.first, None)

    @staticmethod
    def in_order(answer: BatchAnswer, ids: Sequence[Id]) -> bool:
        """Whether ``answer``'s members carry exactly ``ids``, in order (its batch's, as ``expect_batch`` got them)."""
        try:
            return list(map(_ID, answer.members)) == ids
        except (KeyError, TypeError):
            return False
