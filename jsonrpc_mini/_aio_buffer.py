"""One receive buffer per thread for the asyncio driver's connections.

With ``data_received`` asyncio's socket transports allocate 256 KiB for every
read: above malloc's mmap threshold, so each read costs an mmap, an mremap and a
munmap (three system calls, about as much as the read itself). Our protocols are
also ``asyncio.BufferedProtocol``: the transport reads into this buffer and the
protocol copies what arrived out at once (``buffer_updated``), before anything
else can read; a thread runs one event loop callback at a time, so every
connection of the thread can share the buffer.
"""

from __future__ import annotations

import threading

__all__ = ["READ_SIZE", "read_buffer"]

READ_SIZE = 256 * 1024  # what asyncio's socket transports read at most per system call

_local = threading.local()


def read_buffer() -> memoryview:
    """This thread's receive buffer (its pages are mapped only once data fills them)."""
    buffer: memoryview | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = memoryview(bytearray(READ_SIZE))
    return buffer
