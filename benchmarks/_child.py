"""Stopping a benchmark's child process: a server or client that runs until its stdin closes."""

from __future__ import annotations

import subprocess


def stop_child(proc: subprocess.Popen[str], wait: float) -> None:
    """Close ``proc``'s stdin (it ends at EOF), give it ``wait`` seconds, else kill it; close its stdout."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(wait)
    if proc.stdout is not None:
        proc.stdout.close()
