"""LoopbackServer keeps working when the process holds more than 1024 descriptors."""

from __future__ import annotations

import os
import resource

import pytest

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import LoopbackServer

pytestmark = pytest.mark.timeout(60)


def test_proxy_accepts_with_descriptors_above_1023() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.fail(f"RLIMIT_NOFILE hard limit {hard} is too low for this test")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]
    try:
        server = RPCServer()
        server.register_function(lambda a, b: a + b, name="add")
        with LoopbackServer(server) as proxy, proxy.client() as client:
            assert client.add(2, 3) == 5
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
