"""The larger buffers of gathering reads (``SocketTransport._gather``), lent by a pool shared by all connections."""

from __future__ import annotations

import mmap

__all__ = ["GATHER_MAX", "PRIVATE", "gather_limit", "give_back", "take_large"]

# A gathering read takes at most this much (the size of each larger buffer).
GATHER_MAX = 4 * 2**20

_kept: list[mmap.mmap] = []  # the larger buffers not lent now
# Read buffers are private to this process: mmap's default (shared) would let a child
# made by fork() read into the very pages its parent's buffers use (a kept one here, a
# transport's own). (Windows' mmap has no flags.)
PRIVATE: dict[str, int] = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
_KEPT = 2  # at most this many are kept; more made at once (concurrent large reads) are dropped


def gather_limit(max_message_size: int) -> int:
    """How much one read gathers for a reader of messages up to ``max_message_size`` bytes."""
    # (One byte more than the limit: a message that has arrived whole, newline and all.)
    return min(max_message_size + 1, GATHER_MAX)


def take_large() -> mmap.mmap:
    """A larger read buffer for one gathering read: a kept one, or a new one."""
    try:
        return _kept.pop()  # (one step in C: two threads never take the same one)
    except IndexError:
        # Only the pages that reads fill take memory (anonymous mmap); a kept buffer's
        # pages are there already, so reading into it faults none.
        return mmap.mmap(-1, GATHER_MAX, **PRIVATE)


def give_back(large: mmap.mmap) -> None:
    """Keep ``large`` for the next gathering read, unless enough are kept already."""
    if len(_kept) < _KEPT:  # (two threads at once may keep one more: harmless)
        _kept.append(large)
