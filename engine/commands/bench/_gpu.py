"""Device measurements shared by the benchmarks: GPU-busy share, kernels, peak memory."""

from __future__ import annotations

import time
from collections.abc import Callable


def synchronize(device) -> None:
    """Wait for the device's queued work (nothing on a CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def busy_share(device, step: Callable[[], object], steps: int = 4) -> dict:
    """GPU time over wall time of ``steps`` calls, and CUDA kernels per call (profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if device.type != "cuda":
        return {}
    synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        wall = time.perf_counter() - started
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    gpu = sum(e.device_time for e in kernels) / 1e6
    return {"gpu_busy": round(gpu / wall, 3), "kernels_per_step": round(len(kernels) / steps),
            "gpu_ms_per_step": round(1000 * gpu / steps, 2)}


def peak_memory_mb(device) -> float | None:
    """The most GPU memory torch held since the last reset (None on a CPU)."""
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
