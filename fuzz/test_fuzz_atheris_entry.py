"""The atheris entry point stays runnable: CI feeds it inputs without atheris."""

from __future__ import annotations

import random

from . import atheris_framing


# Invariant: the coverage-guided harness's property holds for arbitrary libFuzzer-style
# inputs (random bytes decoded by Hypothesis), so the entry point never rots.
def test_atheris_entry_point_accepts_arbitrary_inputs():
    rng = random.Random(1234)
    for size in (0, 1, 7, 64, 512, 2048):
        atheris_framing.fuzz_one_input(rng.randbytes(size))
    atheris_framing.self_test(50, seed=99)
