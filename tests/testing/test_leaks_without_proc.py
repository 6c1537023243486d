"""Resources where there is no /proc (macOS, Windows): threads are still compared, fds not."""

from __future__ import annotations

import os
import threading

import pytest

from jsonrpc_mini.testing import Resources

pytestmark = pytest.mark.timeout(30)


def test_without_proc_only_threads_are_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    listdir = os.listdir

    def no_proc(path: str) -> list[str]:
        if str(path).startswith("/proc"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", no_proc)
    before = Resources()
    assert before.fds is None
    r, w = os.pipe()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(10.0,), name="left-behind")
    try:
        assert before.leaks() == []  # a pipe opened since is not seen without /proc
        thread.start()
        assert before.leaks() == ["thread left-behind"]
        with pytest.raises(AssertionError, match="left behind: thread left-behind"):
            before.assert_no_leaks(timeout=0)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(10.0)
        os.close(r)
        os.close(w)
