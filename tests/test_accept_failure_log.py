"""Both servers out of file descriptors: one WARNING for a run of failed ``accept()``s, not one each.

A connection waiting in the listen queue keeps the listener readable, so while the
process is out of descriptors (EMFILE) ``accept()`` fails at every retry, every
10 ms. The server logged a WARNING for each: about 100 lines a second for as long
as it lasted, with the default ``max_connections`` (1024) above the usual soft
limit of descriptors (1024) a flood any peer could cause. Now the first failure is
logged at once, then at most one WARNING per 10 s with the count (each failure at
DEBUG), and a count left is logged when the listener closes, as for refusals at
``max_connections``.

The aio server's case is described above its test. Each run is a child process:
it lowers its own descriptor limit, which no thread of the test runner should meet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_NOFILE and /proc/self/fd: Linux"),
]

# Both children: a context manager under which the process has no descriptor left
# (its limit lowered to the highest in use, the free numbers below it filled).
_NO_DESCRIPTORS = textwrap.dedent(
    """
    import contextlib, os, resource

    @contextlib.contextmanager
    def no_descriptors_left():
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
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for fd in fillers:
                os.close(fd)
    """
)

_CHILD = _NO_DESCRIPTORS + textwrap.dedent("""
    import json, logging, socket, threading
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
    with no_descriptors_left():
        for sock in waiting:
            sock.connect((host, port))  # (the kernel's listen queue takes it)
        with seen:
            enough = seen.wait_for(lambda: len(records) >= 30, timeout=30)
    failed = len(records)
    for sock in waiting:
        sock.close()
    server.shutdown()
    print(json.dumps({"enough": enough, "failed": failed, "records": records}))
    """)


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


# The aio server: its plain TCP and Unix ports used asyncio's listener, whose accept
# loop (CPython 3.11-3.13) does not stop after EMFILE: an ERROR with a traceback to
# the "asyncio" logger per backlog slot at every wake-up and 1 s retry, hundreds a
# second. Its own accept loop (_aio_listener) logs as the sync server does, retries
# every second and serves the waiting clients once descriptors are free again.
_AIO_CHILD = _NO_DESCRIPTORS + textwrap.dedent(
    """
    import asyncio, json, logging, socket, sys

    from jsonrpc_mini import aio

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.name, record.levelname, record.getMessage()))

    for name in ("jsonrpc_mini", "asyncio"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Keep())

    def failures():
        return [r for r in records if "accept" in r[2] or (r[0] == "asyncio" and r[1] != "DEBUG")]

    async def main(path):
        server = aio.RPCServer()
        server.register_function(lambda: "pong", name="ping")
        if path:
            target = await server.start(path=path)
            family, address = socket.AF_UNIX, target
        else:
            host, port = await server.start("127.0.0.1", 0)
            family, address = socket.AF_INET, (host, port)
        # Sockets made now, connected once no descriptor is left: the server cannot accept them.
        waiting = [socket.socket(family) for _ in range(3)]
        with no_descriptors_left():
            for sock in waiting:
                sock.setblocking(False)
                try:
                    sock.connect(address)  # (the kernel's listen queue takes it)
                except BlockingIOError:
                    pass
            for _ in range(300):  # three failed tries at least (one a second), 30 s at most
                if len([r for r in failures() if r[0] == "jsonrpc_mini"]) >= 3 or len(failures()) > 500:
                    break
                await asyncio.sleep(0.1)
            during = failures()
        # Descriptors are free again: the clients waiting in the queue are served.
        def ask(sock):  # (in a thread: the server runs on this loop)
            with sock:
                sock.setblocking(True)
                sock.settimeout(10)
                sock.sendall(b'{"jsonrpc": "2.0", "method": "ping", "id": 1}\\n')
                return json.loads(sock.makefile("rb").readline())["result"]

        answers = [await asyncio.to_thread(ask, sock) for sock in waiting]
        await server.shutdown()
        return {"during": during, "answers": answers, "after": failures()[len(during):]}

    print(json.dumps(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))))
    """
)


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_aio_a_run_of_failed_accepts_gives_one_warning_and_the_clients_are_served_after(
    where: str, tmp_path: Path
) -> None:
    args = [str(tmp_path / "s.sock")] if where == "unix" else []
    done = subprocess.run(
        [sys.executable, "-c", _AIO_CHILD, *args], check=False, capture_output=True, text=True, timeout=75
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    during = out["during"]
    assert not [r for r in during if r[0] == "asyncio"], during[:5]  # (was hundreds of ERRORs with tracebacks)
    warnings = [message for _, level, message in during if level == "WARNING"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("accept failed: [Errno 24]"), warnings
    assert warnings[0].endswith("(further failures: one warning per 10 s at most)")
    # Retried about once a second, each failure at DEBUG (not a busy loop of them).
    held = [message for _, level, message in during if level == "DEBUG"]
    assert 2 <= len(held) <= 40, held
    assert out["answers"] == ["pong"] * 3
    # The listener's close logs the count left.
    assert any(m.endswith("more accept() failures since the last warning") for _, _, m in out["after"]), out
