"""aio.RPCServer out of file descriptors: one WARNING for a run of failed ``accept()``s, and accepting resumes.

asyncio's own listener (``loop.create_server``), which the plain TCP and Unix ports
used, does not stop its accept loop after EMFILE (CPython 3.11-3.13): it logged an
ERROR with a traceback to the ``asyncio`` logger once per backlog slot at every
wake-up and every 1 s retry, hundreds a second for as long as a connection waited
in the listen queue. The server's own accept loop (``_aio_listener``) now logs as
the sync server does: the first failure at once, the rest at DEBUG (one WARNING per
10 s at most), a count left when the listener closes; it retries every second and
serves the waiting clients once descriptors are free again.

The run is a child process: it lowers its own descriptor limit, which no thread of
the test runner should meet.
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

_CHILD = textwrap.dedent(
    """
    import asyncio, json, logging, os, resource, socket, sys

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
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for fd in fillers:
                os.close(fd)
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
def test_a_run_of_failed_accepts_gives_one_warning_and_the_clients_are_served_after(
    where: str, tmp_path: Path
) -> None:
    args = [str(tmp_path / "s.sock")] if where == "unix" else []
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], check=False, capture_output=True, text=True, timeout=75
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
