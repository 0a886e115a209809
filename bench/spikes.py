"""How well spike windows find spikes: Poisson counts per window at a baseline rate, spikes of
4-10x the rate injected at known windows, hits fed in event-time order to the spike core
(udfs/windows.py) as its operator would; precision and recall of the alerted windows per rate,
and the time per hit (add, plus advance when its timer is due). Prints the JSON (bench.report.emit).

    .venv/bin/python -m bench.spikes [--seeds 5] [--windows 300] [--sigma 3]
                                     [--out [bench/results/spikes.json]]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report import emit, host, percentiles
from schemas.window import WindowSpec
from trackius.settings import REPO_ROOT
from udfs.windows import Hit, SpikeState

RESULTS = REPO_ROOT / "bench" / "results" / "spikes.json"
RATES = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
SIZE_MS = 60_000
SPIKES_PER_SERIES = 10
FIRST_SPIKE = 20  # windows of quiet baseline first, past any warmup
SPIKE_GAP = 10  # windows between spikes, so each is judged against a settled baseline


@dataclass(frozen=True)
class Series:
    hits: list[Hit]  # in event-time order
    spikes: frozenset[int]  # window starts (ms) where a spike was injected


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    spikes: int
    found: int
    false_alerts: int


def spike_series(rate: float, rng: np.random.Generator, windows: int = 300) -> Series:
    """Poisson(rate) hits per window, and SPIKES_PER_SERIES windows of Poisson(4-10 x rate)."""
    slots = np.arange(FIRST_SPIKE, windows, SPIKE_GAP)
    chosen = rng.choice(slots, size=min(SPIKES_PER_SERIES, len(slots)), replace=False)
    rates = np.full(windows, rate)
    rates[chosen] *= rng.uniform(4, 10, size=len(chosen))
    counts = rng.poisson(rates)
    hits = []
    for index, count in enumerate(counts):
        offsets = np.sort(rng.integers(0, SIZE_MS, size=count))
        hits += [Hit("bench", 1, f"k{index}-{n}", index * SIZE_MS + int(offset))
                 for n, offset in enumerate(offsets)]
    return Series(hits, frozenset(int(i) * SIZE_MS for i in chosen))


def detect(spec: WindowSpec, hits: list[Hit]) -> tuple[set[int], list[float]]:
    """Window starts alerted, and microseconds per hit, with the watermark at each hit's time."""
    state, alerted, micros = SpikeState(), set(), []
    for hit in hits:
        started = time.perf_counter_ns()
        state.add(hit, spec, hit.event_ms)
        timer = state.next_timer(spec)
        due = timer is not None and timer <= hit.event_ms
        alerts = state.advance(spec, hit.event_ms) if due else []
        micros.append((time.perf_counter_ns() - started) / 1000)
        alerted |= {alert.window_start_ms for alert in alerts}
    alerted |= {alert.window_start_ms for alert in state.advance(spec, 2**63 - 1)}
    return alerted, micros


def score(alerted: set[int], spikes: frozenset[int]) -> Score:
    found = len(alerted & spikes)
    return Score(precision=found / len(alerted) if alerted else 1.0,
                 recall=found / len(spikes) if spikes else 1.0,
                 spikes=len(spikes), found=found, false_alerts=len(alerted - spikes))


def run(seeds: int, windows: int, sigma: float) -> dict:
    spec = WindowSpec(kind="spike", size=f"{SIZE_MS // 1000}s", sigma=sigma)
    per_rate, micros = {}, []
    for rate in RATES:
        spikes = found = false_alerts = 0
        for seed in range(seeds):
            series = spike_series(rate, np.random.default_rng(seed), windows)
            alerted, timings = detect(spec, series.hits)
            result = score(alerted, series.spikes)
            spikes, found = spikes + result.spikes, found + result.found
            false_alerts += result.false_alerts
            micros += timings
        per_rate[str(rate)] = {
            "precision": round(found / max(found + false_alerts, 1), 3),
            "recall": round(found / max(spikes, 1), 3), "spikes": spikes,
            "false_alerts": false_alerts}
    return {"bench": "spikes", "seeds": seeds, "windows": windows, "sigma": sigma,
            "spec": {"alpha": spec.alpha, "warmup": spec.warmup, "min_count": spec.min_count},
            "per_rate": per_rate, "per_hit": percentiles(micros, unit="_us"), "host": host()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--sigma", type=float, default=3.0)
    parser.add_argument("--out", type=Path, nargs="?", const=RESULTS,
                        help=f"also write the JSON (default {RESULTS})")
    args = parser.parse_args()
    emit(run(args.seeds, args.windows, args.sigma), args.out)


if __name__ == "__main__":
    main()
