"""What every benchmark reports the same way: percentiles of its timings, the host it ran on,
and the JSON it prints (and writes with --out)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def percentiles(values: list[float], digits: int = 2, unit: str = "_ms") -> dict[str, float]:
    """p50/p95/p99 and the mean of `values` (keys suffixed by `unit`), with their count."""
    array = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {f"p50{unit}": round(float(p50), digits), f"p95{unit}": round(float(p95), digits),
            f"p99{unit}": round(float(p99), digits), f"mean{unit}": round(float(array.mean()), digits),
            "n": len(values)}


def timed(call: Callable[[], object]) -> float:
    """Milliseconds one call takes."""
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def host() -> dict[str, object]:
    """The machine the figures come from: a busy host shows in its load average."""
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def emit(report: dict, out: Path | None) -> None:
    """Print the report as JSON; also write it to `out` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
