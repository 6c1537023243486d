"""Sync server out of file descriptors: one WARNING for a run of failed ``accept()``s, not one each.

A connection waiting in the listen queue keeps the listener readable, so while the
process is out of descriptors (EMFILE) ``accept()`` fails at every retry, every
10 ms. The server logged a WARNING for each: about 100 lines a second for as long
as it lasted, with the default ``max_connections`` (1024) above the usual soft
limit of descriptors (1024) a flood any peer could cause. Now the first failure is
logged at once, then at most one WARNING per 10 s with the count (each failure at
DEBUG), and a count left is logged when the listener closes, as for refusals at
``max_connections``.

The run is a child process: it lowers its own descriptor limit, which no thread of
the test runner should meet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_NOFILE and /proc/self/fd: Linux"),
]

_CHILD = textwrap.dedent(
    """
    import json, logging, os, resource, socket, threading, time
    from jsonrpc_mini import RPCServer

    records = []
    seen = threading.Condition()

    class Keep(logging.Handler):
        def emit(self, record):
            if "accept" in record.getMessage():
                with seen:
                    records.append((record.levelname, record.getMessage()))
                    seen.notify_all()

    logger = logging.getLogger("jsonrpc_mini")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Keep())
    server = RPCServer()
    host, port = server.start("127.0.0.1", 0)
    # Sockets made now, connected once no descriptor is left: the server cannot accept them.
    waiting = [socket.socket() for _ in range(3)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    fillers = []  # the free numbers below the limit: none is left for accept()
    try:
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        for sock in waiting:
            sock.connect((host, port))  # (the kernel's listen queue takes it)
        with seen:
            enough = seen.wait_for(lambda: len(records) >= 30, timeout=30)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)
    failed = len(records)
    for sock in waiting:
        sock.close()
    server.shutdown()
    print(json.dumps({"enough": enough, "failed": failed, "records": records}))
    """
)


def test_a_run_of_failed_accepts_gives_one_warning_with_the_count() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["enough"], out  # accept() failed again and again while out of descriptors
    warnings = [message for level, message in out["records"] if level == "WARNING"]
    # The first failure at once, saying the rest are counted; the count of the others at
    # shutdown (the listener's close), as no 10 s passed.
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("accept failed: [Errno 24]")
    assert warnings[0].endswith("(further failures: one warning per 10 s at most)")
    held = sum(1 for level, _ in out["records"] if level == "DEBUG")
    assert held >= 29
    assert warnings[1].startswith(f"{held} more accept() failures since the last warning")
