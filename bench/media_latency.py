"""What image analysis costs the alert path: text alert latency with and without image traffic,
image findings latency, and proof that a URL that never answers does not stall the job.

The evidence for fetching on a thread pool inside the thread-mode AnalyzeMedia operator (PyFlink's
Python AsyncFunction exists only in process mode, and the mode applies to the whole job). On a
stack of its own (bench.latency's helpers) it starts the job, applies one rule every text
matches, serves ~640-px JPEGs of the shared images from an HTTP server in this process (plus
/slow, which never answers within the fetch timeout) and, per rate, runs phases of a mixed load
produced by a subprocess of this module:

    baseline  text-only events (what the alert path does without images)
    slow      text + a --slow-share of events whose image URI is /slow
    mix       text + --image-share events with one image + --slow-share slow ones

Text alert latency (feed receive - collected_at) is measured on the text-only events; image
latency is the arrival on findings.v1 of a part's final MediaFindings - collected_at. Results: a
table on stdout and bench/results/media_latency.json (rows of other profiles/rates kept).

    python -m bench.media_latency [--rates 20,50] [--duration 40] [--profiles tuned,process]
                                  [--phases baseline,slow,mix] [--image-share 0.2] [--slow-share 0.02]
                                  [--condition benchmark]   (a term rule: OCR of images is on;
                                                             "source:bench" matches all without it)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from bench.latency import PROFILES, bench_settings, percentile, stage_times, summarize
from schemas.rule import Rule
from services.feed_client import feed_url, follow
from trackius import jobctl, rules_client, stack
from trackius.demo import feed_position, start_fanout
from trackius.settings import REPO_ROOT, SHARED_DATA, Settings

RESULTS = REPO_ROOT / "bench" / "results" / "media_latency.json"
PHASES = {"baseline": (0.0, 0.0), "slow": (0.0, None), "mix": (None, None)}  # None: the CLI's share
GOLDEN = 0.6180339887498949  # spreads each kind of event evenly over the run


# --- the media server (this process) ------------------------------------------------------


def load_images(long_side: int = 640) -> list[bytes]:
    """Every shared image, resized to `long_side` and re-encoded as JPEG: "640-px images"."""
    images = []
    for path in sorted((SHARED_DATA / "images").rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            with Image.open(path) as image:
                image = image.convert("RGB")
                image.thumbnail((long_side, long_side))
                out = io.BytesIO()
                image.save(out, "JPEG", quality=85)
                images.append(out.getvalue())
    return images


def serve_media(images: list[bytes], slow_s: float) -> ThreadingHTTPServer:
    """/img/<i>.jpg?<anything> answers image i; /slow sleeps `slow_s` before answering."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/slow"):
                time.sleep(slow_s)
            name = self.path.split("?", 1)[0].rsplit("/", 1)[-1].split(".", 1)[0]
            body = images[int(name) % len(images)] if name.isdigit() else images[0]
            try:
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the fetcher gave up (the point of /slow)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="media-server", daemon=True).start()
    return server


# --- the load (a subprocess, so its work does not share this process's GIL) ---------------


def kind_of(n: int, image_share: float, slow_share: float) -> str:
    spot = (n * GOLDEN) % 1.0
    return "slow" if spot < slow_share else "image" if spot < slow_share + image_share else "text"


def produce(argv: list[str]) -> None:
    from bench.text_core import corpus
    from connectors.kafka import producer
    from trackius.replay import paced

    parser = argparse.ArgumentParser()
    for name in ("--rate", "--duration", "--image-share", "--slow-share"):
        parser.add_argument(name, type=float, required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    texts = [f"benchmark: {text}" for text in corpus(settings)]
    client = producer(settings, linger_ms=1)
    total = int(args.rate * args.duration)
    for n in paced(range(total), args.rate):
        kind, key = kind_of(n, args.image_share, args.slow_share), f"x:{args.tag}-{n}"
        now = time.time_ns() // 1_000_000
        record = {"content_key": key, "platform": "x", "source": "bench", "author": "@bench",
                  "published_at": now, "collected_at": now, "text": texts[n % len(texts)]}
        if kind != "text":  # a unique URI per event: the fetch cache must not answer
            path = "slow" if kind == "slow" else f"img/{n}.jpg"
            record["parts"] = [{"part_id": "m0", "kind": "image", "uri": f"{args.base_url}/{path}?k={key}"}]
        client.send(settings.topics.content_events, json.dumps(record).encode())
    client.flush()
    client.close()
    print(json.dumps({"sent": total}))


# --- measuring ----------------------------------------------------------------------------


def final_media(item: dict) -> str | None:
    """The content key of final image or video findings (status ok or error)."""
    if item.get("kind") in ("image", "video") and item.get("status") in ("ok", "error"):
        return item["content_key"]
    return None


class FindingsWatcher:
    """Findings records as they arrive on findings.v1, the first per key that `key_of` gives
    (None: not wanted): key -> (receive ms, findings)."""

    def __init__(self, settings: Settings, key_of: Callable[[dict], Hashable | None] = final_media) -> None:
        from connectors.kafka import consumer

        self.key_of = key_of
        self.finals: dict[Hashable, tuple[int, dict]] = {}
        self._consumer = consumer(settings, settings.topics.findings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="findings", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=50).values():
                received = time.time_ns() // 1_000_000
                for record in records:
                    item = json.loads(record.value)
                    key = self.key_of(item)
                    if key is not None:
                        self.finals.setdefault(key, (received, item))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def group_cpu_s(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group (the job and its JVM)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def run_phase(settings: Settings, rule_id: str, tag: str, rate: float, duration: float,
                    shares: tuple[float, float], base_url: str, watcher: FindingsWatcher) -> tuple[list, int]:
    """Runs the load; returns the text-only events' (number, latency, stages) and the sent count."""
    latencies: list[tuple] = []
    since = feed_position(settings)
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.media_latency", "produce", "--rate", str(rate), "--duration",
        str(duration), "--tag", tag, "--base-url", base_url, "--image-share", str(shares[0]),
        "--slow-share", str(shares[1]), cwd=REPO_ROOT, env={**os.environ, **settings.to_env()},
        stdout=subprocess.PIPE)

    async def receive() -> None:
        async for item in follow(feed_url(settings), rules=[rule_id], since=since):
            alert = item["alert"]
            if alert["content_key"].startswith(f"x:{tag}-"):
                number = int(alert["content_key"].rsplit("-", 1)[1])
                if kind_of(number, *shares) == "text":
                    received = time.time_ns() // 1_000_000
                    latencies.append((number, received - alert["times"]["collected_at"], stage_times(alert, received)))

    receiver = asyncio.create_task(receive())
    out, _ = await load.communicate()
    sent = json.loads(out.decode().strip().splitlines()[-1])["sent"]
    texts = sum(kind_of(n, *shares) == "text" for n in range(sent))
    parts = {f"x:{tag}-{n}" for n in range(sent) if kind_of(n, *shares) != "text"}
    # Long enough for a /slow part to time out after the last one was sent.
    deadline = time.monotonic() + settings.media_fetch_timeout_ms / 1000 + 10
    while (len(latencies) < texts or not parts <= watcher.finals.keys()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    receiver.cancel()
    return latencies, sent


def summarize_parts(watcher: FindingsWatcher, tag: str, sent: int, shares: tuple[float, float],
                    kind: str, first: int) -> dict:
    numbers = [n for n in range(sent) if kind_of(n, *shares) == kind]
    if not numbers:
        return {}
    got = [watcher.finals.get(f"x:{tag}-{n}") for n in numbers]
    arrived = [(n, entry) for n, entry in zip(numbers, got) if entry is not None]
    measured = [(recv - item["collected_at"], item) for n, (recv, item) in arrived if n >= first]
    ms = [latency for latency, _ in measured]
    outcomes: dict[str, int] = {}
    for _, item in measured:
        outcome = item["status"] if item["status"] != "error" else f"error:{item['failure']['code']}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        for flag in item.get("flags", ()):  # ocr_pending: its OCR text follows, outside this latency
            outcomes[flag] = outcomes.get(flag, 0) + 1
    quarter = max(1, len(ms) // 4)
    row = {"sent": len(numbers), "final": len(arrived), "outcomes": outcomes,
           "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
           "max_ms": max(ms, default=float("nan")),
           "sustained": len(arrived) == len(numbers) and percentile(ms[-quarter:], 50) <= 2 * percentile(ms[:quarter], 50) + 200}
    ok = [item for _, item in measured if item["status"] == "ok"]
    if not ok:
        return row
    row["timings_p50_ms"] = {stage: percentile([i["timings_ms"].get(stage, 0) for i in ok], 50)
                             for stage in ("fetch", "decode", "analyse")}
    row["job_p50_ms"] = percentile([i["analysed_at"] - i["collected_at"] for i in ok], 50)
    every_ok = [item for _, (_, item) in arrived if item["status"] == "ok"]
    if len(every_ok) > 1:
        span_s = (max(i["analysed_at"] for i in every_ok) - min(i["collected_at"] for i in every_ok)) / 1000
        row["analysed_per_s"] = round(len(every_ok) / span_s, 2)
    return row


# --- profiles, phases, report -------------------------------------------------------------


def run_profile(base: Settings, name: str, rates: list[float], phases: list[str], args: argparse.Namespace) -> list[dict]:
    """One profile on a fresh stack (bench.latency's reasons), the job started once for all rates."""
    # A state dir apart from bench.latency's, which that benchmark wipes when it starts.
    settings = bench_settings(base.replace(state_dir=base.state_dir / "media")).replace(**PROFILES[name])
    server = serve_media(load_images(), settings.media_fetch_timeout_ms / 1000 + 3)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    stack.up(settings)
    fanout = start_fanout(settings)
    rows: list[dict] = []
    try:
        started = time.monotonic()
        try:
            jobs = jobctl.start_all(settings, resume=False, timeout_s=180)
        except jobctl.JobError as exc:
            print(f"{name}: the job did not start: {exc}", flush=True)
            return [{"profile": name, "condition": args.condition, "error": str(exc)[-4000:]}]
        watcher = FindingsWatcher(settings)
        try:
            rule_id = f"bench-media-{name}-{int(time.time())}"
            rules_client.publish(settings, [Rule(rule_id, 1, condition=args.condition)], wait=True)
            print(f"{name}: job ready in {time.monotonic() - started:.0f} s", flush=True)
            for rate in rates:
                for phase in phases:
                    rows.append(run_one(settings, name, rule_id, rate, phase, base_url, watcher, jobs["analyze"].pid, args))
                    print(format_row(rows[-1]), flush=True)
                if not all(row["text"]["sustained"] for row in rows if row["rate"] == rate):
                    break  # a backlog now would spoil every higher rate
        finally:
            watcher.close()
            jobctl.stop_all(jobs)
    finally:
        jobctl.stop_local(fanout)
        stack.down(settings)
        server.shutdown()
    return rows


def run_one(settings: Settings, profile: str, rule_id: str, rate: float, phase: str, base_url: str,
            watcher: FindingsWatcher, job_pid: int, args: argparse.Namespace) -> dict:
    image, slow = PHASES[phase]
    shares = (args.image_share if image is None else image, args.slow_share if slow is None else slow)
    tag = f"{rule_id}-{int(rate)}-{phase}"
    cpu, load = group_cpu_s(job_pid), os.getloadavg()[0]
    latencies, sent = asyncio.run(run_phase(settings, rule_id, tag, rate, args.duration, shares, base_url, watcher))
    texts = sum(kind_of(n, *shares) == "text" for n in range(sent))
    first = int(rate * args.warmup)
    return {"profile": profile, "mode": settings.python_execution_mode, "condition": args.condition,
            "rate": rate, "phase": phase,
            "image_share": shares[0], "slow_share": shares[1], "duration_s": args.duration, "warmup_s": args.warmup,
            "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
            "job_cpu_pct": round(100 * (group_cpu_s(job_pid) - cpu) / args.duration),
            "text": summarize(latencies, rate, args.duration, args.warmup, texts),
            "images": summarize_parts(watcher, tag, sent, shares, "image", first),
            "slow": summarize_parts(watcher, tag, sent, shares, "slow", first)}


HEADER = (f"{'profile':<8} {'rate':>4} {'phase':<8} | {'text p50':>8} {'p95':>6} {'p99':>6} {'recv/sent':>11} sus | "
          f"{'img p50':>7} {'p95':>6} {'p99':>6} {'final':>7} {'img/s':>5} sus fetch/dec/anl | slow outcome, p50 | cpu% load")


def format_row(row: dict) -> str:
    text, images, slow = row["text"], row["images"], row["slow"]
    line = (f"{row['profile']:<8} {row['rate']:>4.0f} {row['phase']:<8} | {text['p50_ms']:>8.0f} {text['p95_ms']:>6.0f} "
            f"{text['p99_ms']:>6.0f} {text['received']:>5}/{text['sent']:<5} {'yes' if text['sustained'] else 'NO '} | ")
    if images:
        t = images.get("timings_p50_ms", {"fetch": 0, "decode": 0, "analyse": 0})
        line += (f"{images['p50_ms']:>7.0f} {images['p95_ms']:>6.0f} {images['p99_ms']:>6.0f} "
                 f"{images['final']:>3}/{images['sent']:<3} {images.get('analysed_per_s', 0):>5.1f} "
                 f"{'yes' if images['sustained'] else 'NO '} {t['fetch']:.0f}/{t['decode']:.0f}/{t['analyse']:.0f} | ")
    else:
        line += f"{'-':>7} {'':>6} {'':>6} {'':>7} {'':>5} {'':>3} {'':>13} | "
    if slow:
        line += f"{slow['outcomes']} {slow['final']}/{slow['sent']}, {slow['p50_ms']:.0f} ms | "
    else:
        line += "- | "
    return line + f"{row['job_cpu_pct']} {row['loadavg_1m'][0]}->{row['loadavg_1m'][1]}"


def write_results(rows: list[dict]) -> None:
    """Adds `rows` to the results file, replacing earlier rows of the same profile, rule and rate."""
    def key(row: dict) -> tuple:
        return row["profile"], row.get("condition", "benchmark"), row.get("rate")

    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    fresh = {key(row) for row in rows}
    kept = [row for row in old if key(row) not in fresh and key(row)[:2] + (None,) not in fresh]
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()}, "rows": kept + rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(_no_nan(report), indent=2))
    print(f"wrote {RESULTS}")


def _no_nan(value: object) -> object:
    """NaN (a percentile of nothing) as null: NaN is not JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_nan(item) for item in value]
    return value


def main() -> None:
    if sys.argv[1:2] == ["produce"]:
        produce(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,50")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--profiles", default="tuned")
    parser.add_argument("--phases", default="baseline,slow,mix")
    parser.add_argument("--image-share", type=float, default=0.2)
    parser.add_argument("--slow-share", type=float, default=0.02)
    parser.add_argument("--condition", default="benchmark",
                        help="the rule every text matches; a term rule also turns OCR of images on")
    args = parser.parse_args()
    rows: list[dict] = []
    print(HEADER, flush=True)
    for name in args.profiles.split(","):
        rows += run_profile(Settings.from_env(), name, [float(r) for r in args.rates.split(",")],
                            args.phases.split(","), args)
    write_results(rows)


if __name__ == "__main__":
    main()
