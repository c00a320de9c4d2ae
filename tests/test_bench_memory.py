"""The peak-memory measurement of ``scripts/bench_memory.py`` measures what it says it does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location("bench_memory", Path(__file__).parents[1] / "scripts" / "bench_memory.py")
bench_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_memory)

MB4 = 1024 * 1024  # float32 elements in 4 MiB


def test_cpu_peak_counts_live_tensors_allocated_during_the_call():
    held = torch.zeros(4 * MB4)  # allocated before: not counted

    def two_at_once():
        a, b = torch.ones(MB4), torch.ones(MB4)
        return float((a + b).sum())  # a, b and a + b live together: 12 MiB

    def one_at_a_time():
        for _ in range(3):
            x = torch.ones(MB4)
            del x  # freed before the next: 4 MiB

    peak, result = bench_memory.peak_bytes(two_at_once, torch.device("cpu"))
    assert result == 2.0 * MB4 and 12 * 2**20 <= peak < 12.1 * 2**20
    assert 4 * 2**20 <= bench_memory.peak_bytes(one_at_a_time, torch.device("cpu"))[0] < 4.1 * 2**20
    assert held.numel() == 4 * MB4


def test_fit_line_recovers_slope_intercept_and_r2():
    a, b, r2 = bench_memory.fit_line([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0])
    assert (round(a, 6), round(b, 6), round(r2, 6)) == (1.0, 2.0, 1.0)
