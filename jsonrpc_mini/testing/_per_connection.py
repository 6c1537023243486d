"""Per-connection fault plans of the real-port kits: ``faults=[plan0, plan1, ...]``.

``LoopbackServer`` and ``AioLoopbackServer`` take, as ``faults``, a FaultPlan (every
connection gets it), None (no faults), or a list or tuple of ``FaultPlan | None``:
connection k, in accept order counting from 0, gets item k; connections past the end
get no faults (a retry loop that outlives the list then runs clean rather than
failing with an IndexError far from the test's line). Item k is applied as
connection k of that plan (its number mixed into the seed), so ``[plan, plan]`` gives
the first two connections exactly what ``plan`` alone gives them, and the same seeds
give the same run.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._fault_plan import FaultPlan
from ._loopback import add_plan_note

__all__ = ["KitFaults", "Plans", "add_faults_note", "as_plans", "longest_close_delay", "plan_for"]

KitFaults = FaultPlan | Sequence[FaultPlan | None] | None
"""What a real-port kit's ``faults`` accepts (a list or tuple as the sequence)."""

Plans = FaultPlan | tuple[FaultPlan | None, ...] | None
"""``faults`` as a kit keeps it: a sequence becomes a tuple (a list changed later changes nothing)."""


def as_plans(faults: KitFaults) -> Plans:
    """``faults`` (already checked by ``check_kit_args``) with a sequence made a tuple."""
    if faults is None or isinstance(faults, FaultPlan):
        return faults
    return tuple(faults)


def plan_for(plans: Plans, connection: int) -> FaultPlan | None:
    """The plan of connection number ``connection`` (accept order, from 0); None past the end."""
    if isinstance(plans, tuple):
        return plans[connection] if connection < len(plans) else None
    return plans


def longest_close_delay(plans: Plans) -> float:
    """The longest ``close_delay`` of the active plans (what closing the kit may wait for)."""
    items = plans if isinstance(plans, tuple) else (plans,)
    return max((plan.close_delay for plan in items if plan is not None and plan.active), default=0.0)


def add_faults_note(exc: BaseException, plans: Plans) -> None:
    """Attach the plan, or the per-connection plans, with their seeds to ``exc``."""
    if not isinstance(plans, tuple):
        add_plan_note(exc, plans)
        return
    if any(plan is not None and plan.active for plan in plans):
        listed = ", ".join(f"#{k}: {plan!r}" for k, plan in enumerate(plans))
        note = f"jsonrpc_mini fault plans per connection ({listed}; later connections: none) (replay with these seeds)"
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
