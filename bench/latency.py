"""End-to-end latency: Kafka produce -> job -> alerts.v1 -> fan-out -> WebSocket client.

For each settings profile (Trackius' tuned settings, and PyFlink's defaults: process mode,
default bundles and buffer timeout) it starts the job, applies one rule that every benchmark
event matches, and for each rate runs the load generator in a separate process for --duration
seconds, discarding the first --warmup seconds, on a stack of its own (fresh topics, free ports).
A profile stops at its first rate that is not sustained. It reports p50/p95/p99/max latency, received
vs sent, and whether the rate was sustained (everything arrived within 5 s of the end, and
latency did not keep growing). Results: a table on stdout and bench/results/latency.json.

    python -m bench.latency [--rates 500,1000,2000] [--duration 60] [--profiles tuned,default]
                            [--queries 1000]   (active listening queries besides the benchmark rule)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from bench import text_core
from schemas.rule import Rule
from services.feed_client import feed_url, follow
from trackius import jobctl, rules_client, stack
from trackius.demo import feed_position, start_fanout
from trackius.settings import REPO_ROOT, Settings, free_ports

RESULTS = REPO_ROOT / "bench" / "results"
PROFILES = {
    "tuned": {},
    # process mode, but with the small bundles and buffer timeout of the tuned profile
    "process": {"python_execution_mode": "process"},
    "default": {"python_execution_mode": "process", "python_bundle_size": 100_000,
                "python_bundle_time_ms": 1000, "buffer_timeout_ms": 100},
}
DRAIN_S = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


STAGES = ("kafka_in", "analysis", "alerting", "delivery")


def stage_times(alert: dict, received_ms: int) -> tuple[int, ...]:
    """ms spent in each stage: produce->decode, decode->analysed, analysed->alert, alert->client."""
    t = alert["times"]
    return (t["ingested_at"] - t["collected_at"], t["analysed_at"] - t["ingested_at"],
            t["alerted_at"] - t["analysed_at"], received_ms - t["alerted_at"])


def summarize(latencies: list[tuple], rate: float, duration: float, warmup: float, sent: int) -> dict:
    """latencies: (event number, ms, stage times). Drops the warm-up, then percentiles and a
    backlog check."""
    first = int(rate * warmup)
    measured = [entry for entry in sorted(latencies) if entry[0] >= first]
    kept = [entry[1] for entry in measured]
    stages = {name: {"p50_ms": percentile([e[2][i] for e in measured], 50),
                     "p99_ms": percentile([e[2][i] for e in measured], 99)}
              for i, name in enumerate(STAGES)}
    quarter = max(1, len(kept) // 4)
    early, late = percentile(kept[:quarter], 50), percentile(kept[-quarter:], 50)
    received = len(latencies)
    return {
        "rate": rate, "duration_s": duration, "warmup_s": warmup, "sent": sent, "received": received,
        "p50_ms": percentile(kept, 50), "p95_ms": percentile(kept, 95), "p99_ms": percentile(kept, 99),
        "max_ms": max(kept, default=float("nan")),
        "throughput_per_s": round(received / duration, 1),
        "sustained": received >= sent and late <= 2 * early + 50,
        "stages": stages,
    }


async def measure(settings: Settings, rule_id: str, tag: str, rate: float, duration: float) -> tuple[list, int]:
    latencies: list[tuple[int, int]] = []
    since = feed_position(settings)
    env = {**os.environ, **settings.to_env()}
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.produce", "--rate", str(rate), "--duration", str(duration),
        "--tag", tag, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE)

    async def receive() -> None:
        async for item in follow(feed_url(settings), rules=[rule_id], since=since):
            alert = item["alert"]
            if alert["content_key"].startswith(f"x:{tag}-"):
                number = int(alert["content_key"].rsplit("-", 1)[1])
                received = time.time_ns() // 1_000_000
                latencies.append((number, received - alert["times"]["collected_at"], stage_times(alert, received)))

    receiver = asyncio.create_task(receive())
    out, _ = await load.communicate()
    sent = json.loads(out.decode().strip().splitlines()[-1])["sent"]
    deadline = time.monotonic() + DRAIN_S
    while len(latencies) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    receiver.cancel()
    return latencies, sent


def bench_settings(base: Settings) -> Settings:
    """A stack of its own: empty topics (no backlog from earlier runs) on free ports."""
    state = base.state_dir / "bench"
    shutil.rmtree(state, ignore_errors=True)
    kafka, controller, cql, storage, rest, store_rest, fanout = free_ports(7)
    return base.replace(state_dir=state, kafka_bootstrap=f"127.0.0.1:{kafka}", kafka_controller_port=controller,
                        cassandra_port=cql, cassandra_storage_port=storage, flink_rest_port=rest,
                        store_rest_port=store_rest, fanout_port=fanout)


def run_profile(base: Settings, name: str, rates: list[float], duration: float, warmup: float,
                queries: int) -> list[dict]:
    """One profile on a fresh stack: a backlog left by another profile's last rate would
    otherwise be this profile's first work."""
    settings = bench_settings(base).replace(**PROFILES[name])
    stack.up(settings)
    fanout = start_fanout(settings)
    try:
        return run_rates(settings, name, rates, duration, warmup, queries)
    finally:
        jobctl.stop_local(fanout)
        stack.down(settings)


def run_rates(settings: Settings, name: str, rates: list[float], duration: float, warmup: float,
              queries: int) -> list[dict]:
    jobs = jobctl.start_all(settings, resume=False)
    rows = []
    try:
        rule_id = f"bench-{name}-{int(time.time())}"
        background = text_core.queries(text_core.corpus(settings), queries) if queries else []
        rules_client.publish(settings, [Rule(rule_id, 1, condition="benchmark"), *background], wait=True)
        for rate in rates:
            tag = f"{rule_id}-{int(rate)}"
            latencies, sent = asyncio.run(measure(settings, rule_id, tag, rate, duration))
            row = {"profile": name, "queries": queries, **summarize(latencies, rate, duration, warmup, sent)}
            print(format_row(row), flush=True)
            rows.append(row)
            if not row["sustained"]:
                break  # a backlog now would spoil every higher rate
    finally:
        jobctl.stop_all(jobs)
    return rows


def format_row(row: dict) -> str:
    stages = " ".join(f"{row['stages'][name]['p50_ms']:.0f}/{row['stages'][name]['p99_ms']:.0f}" for name in STAGES)
    return (f"{row['profile']:<8} {row['rate']:>7.0f} {row['p50_ms']:>7.0f} {row['p95_ms']:>7.0f} "
            f"{row['p99_ms']:>7.0f} {row['max_ms']:>7.0f} {row['received']:>8}/{row['sent']:<8} "
            f"{'yes' if row['sustained'] else 'NO ':<9} {stages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="250,500,1000,1500,2000")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--profiles", default="tuned,process,default")
    parser.add_argument("--queries", type=int, default=1000, help="generated listening queries also active")
    args = parser.parse_args()
    settings = Settings.from_env()
    rows: list[dict] = []
    print(f"{'profile':<8} {'rate/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'recv/sent':>17} sustained stages p50/p99 ms: {' '.join(STAGES)}")
    for name in args.profiles.split(","):
        rows += run_profile(settings, name, [float(r) for r in args.rates.split(",")], args.duration,
                            args.warmup, args.queries)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()}, "rows": rows}
    (RESULTS / "latency.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS / 'latency.json'}")


if __name__ == "__main__":
    main()
