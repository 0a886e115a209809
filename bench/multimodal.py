"""End-to-end latency of a multi-modal event (text + image + audio): Kafka produce -> job (every
part analysed, fused by content key, rules evaluated) -> alerts.v1 -> fan-out -> WebSocket client.

On a stack of its own (bench.latency's helpers: fresh topics, free ports) it starts the job and
serves, from an HTTP server in this process, a ~640-px JPEG of a shared photo with people in it
and a short speech excerpt (FLAC, re-encoded in memory). A subprocess of this module produces, at
a low steady rate, events with a negative text, one image part and one audio part, each with its
own content key and URIs (so the fetch cache never answers). Per rate it runs two phases:

    media  one rule that needs all three modalities and no text terms (so OCR and speech-to-text
           stay off): object("person") >= 1 AND speech_share > 0.3 AND sentiment < -0.2
    text   the same events, with a rule on the text alone also active
           (source:<this phase's source> AND sentiment < -0.2): it must not wait for the media

Per event: alert received on the feed - collected_at, after --warmup seconds (p50/p95/p99/max, n,
received vs sent), and the stage split from the alert's `times`: ingest (collected -> decoded),
analysis (decoded -> the last part's findings), alerting (-> alert shaped), delivery (-> client).
Each part's own analysis time (its findings' analysed_at - collected_at, from findings.v1) shows
which part was last. Rules have `stories: false`: the same photo in every event would otherwise
fold every alert into one story. Results: a line per phase, then JSON on stdout and
bench/results/multimodal.json.

    python -m bench.multimodal [--rates 1,2] [--duration 30] [--warmup 5] [--profile tuned]
                               [--image ultralytics/bus.jpg] [--audio speech/jfk.flac]
                               [--audio-seconds 8] [--drain 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import soundfile
from PIL import Image

from bench.latency import PROFILES, STAGES, bench_settings, stage_times
from bench.media_latency import FindingsWatcher, _no_nan
from bench.report import emit, host, percentiles
from schemas.rule import Rule
from services.feed_client import feed_url, follow
from tests.media_server import serve
from trackius import jobctl, rules_client, stack
from trackius.demo import feed_position, start_fanout
from trackius.settings import REPO_ROOT, Settings

RESULTS = REPO_ROOT / "bench" / "results" / "multimodal.json"
MEDIA_RULE = 'object("person") >= 1 AND speech_share > 0.3 AND sentiment < -0.2'
TEXT_RULE = "source:{source} AND sentiment < -0.2"
NEGATIVE = ("This brand is awful, I hate it, the worst service ever",
            "Terrible bus company, rude drivers and a disgusting, broken ride",
            "What a horrible, sad speech, I am angry and disappointed")
PARTS = ("text", "img", "snd")


# --- the media server (this process) ------------------------------------------------------


def jpeg(path: Path, long_side: int = 640) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((long_side, long_side))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        return out.getvalue()


def flac_excerpt(path: Path, seconds: float) -> bytes:
    """The first `seconds` of a recording (0: all of it), as 16-bit FLAC."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if seconds > 0:
        samples = samples[: int(seconds * rate)]
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="FLAC", subtype="PCM_16")
    return out.getvalue()


# --- the load (a subprocess, so its work does not share this process's GIL) ---------------


def produce(argv: list[str]) -> None:
    from connectors.kafka import producer
    from trackius.replay import paced

    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    client = producer(settings, linger_ms=1)
    total = int(args.rate * args.duration)
    for n in paced(range(total), args.rate):
        key = f"x:{args.tag}-{n}"
        now = time.time_ns() // 1_000_000
        record = {"content_key": key, "platform": "x", "source": args.source, "author": "@bench",
                  "published_at": now, "collected_at": now, "text": f"{NEGATIVE[n % len(NEGATIVE)]} #{n}",
                  "parts": [{"part_id": "img", "kind": "image", "uri": f"{args.base_url}/photo.jpg?k={key}"},
                            {"part_id": "snd", "kind": "audio", "uri": f"{args.base_url}/speech.flac?k={key}"}]}
        client.send(settings.topics.content_events, json.dumps(record).encode())
    client.flush()
    client.close()
    print(json.dumps({"sent": total}))


# --- measuring ----------------------------------------------------------------------------


def parts_of(prefix: str):
    """The key of each part's final findings (text, and media with status ok or error) of the
    benchmark's events on findings.v1: (content_key, part_id)."""

    def key_of(item: dict) -> tuple[str, str] | None:
        key, part = item.get("content_key", ""), item.get("part_id")
        if key.startswith(prefix) and part in PARTS and item.get("status") != "partial":
            return key, part
        return None

    return key_of


async def run_phase(settings: Settings, rule_ids: list[str], tag: str, source: str, rate: float,
                    duration: float, base_url: str, drain_s: float) -> tuple[dict[str, list], int]:
    """Runs the load; per rule, (event number, latency, stages, missing) of each event's first
    alert; and the sent count."""
    alerts: dict[str, dict[int, tuple]] = {rule_id: {} for rule_id in rule_ids}
    since = feed_position(settings)
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.multimodal", "produce", "--rate", str(rate), "--duration", str(duration),
        "--tag", tag, "--source", source, "--base-url", base_url, cwd=REPO_ROOT,
        env={**os.environ, **settings.to_env()}, stdout=subprocess.PIPE)

    async def receive() -> None:
        async for item in follow(feed_url(settings), rules=rule_ids, since=since):
            alert = item["alert"]
            if alert["content_key"].startswith(f"x:{tag}-"):
                received = time.time_ns() // 1_000_000
                number = int(alert["content_key"].rsplit("-", 1)[1])
                alerts[alert["rule_id"]].setdefault(number, (
                    number, received - alert["times"]["collected_at"], stage_times(alert, received),
                    tuple(alert.get("missing", ()))))

    receiver = asyncio.create_task(receive())
    out, _ = await load.communicate()
    sent = json.loads(out.decode().strip().splitlines()[-1])["sent"]
    deadline = time.monotonic() + drain_s
    while any(len(got) < sent for got in alerts.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    receiver.cancel()
    return {rule_id: sorted(got.values()) for rule_id, got in alerts.items()}, sent


def summarize(entries: list[tuple], sent: int, first: int) -> dict:
    """Latency percentiles of the events after the warm-up, their stage split, and how many
    alerts fired with parts still missing."""
    measured = [entry for entry in entries if entry[0] >= first]
    row: dict = {"sent": sent, "received": len(entries), "measured": len(measured),
                 "fired_with_missing_parts": sum(bool(entry[3]) for entry in entries)}
    if not measured:
        return row
    row.update(percentiles([entry[1] for entry in measured], 0))
    row["max_ms"] = max(entry[1] for entry in measured)
    row["stages"] = {name: {key: value for key, value in percentiles([e[2][i] for e in measured], 0).items()
                            if key in ("p50_ms", "p99_ms")} for i, name in enumerate(STAGES)}
    return row


def summarize_parts(watcher: FindingsWatcher, tag: str, sent: int, first: int) -> dict:
    """Per part: its findings' analysed_at - collected_at (the job's time for it); and how often
    each part was the last of its event to be analysed."""
    parts: dict[str, dict] = {}
    last: dict[str, int] = {}
    for n in range(first, sent):
        found = {part: watcher.finals.get((f"x:{tag}-{n}", part)) for part in PARTS}
        times = {part: got[1]["analysed_at"] - got[1]["collected_at"] for part, got in found.items() if got}
        if len(times) == len(PARTS):
            slowest = max(times, key=times.__getitem__)
            last[slowest] = last.get(slowest, 0) + 1
        for part, ms in times.items():
            parts.setdefault(part, []).append(ms)
    summary = {part: {k: v for k, v in percentiles(ms, 0).items() if k in ("p50_ms", "p99_ms", "n")}
               for part, ms in parts.items()}
    return {"analysed_ms": summary, "last_part": last}


# --- phases, report -----------------------------------------------------------------------


def run(base: Settings, args: argparse.Namespace) -> list[dict]:
    # A state dir apart from bench.latency's and bench.media_latency's, which they wipe.
    settings = bench_settings(base.replace(state_dir=base.state_dir / "multimodal")).replace(**PROFILES[args.profile])
    data = Settings.from_env().data_dir
    routes = {"/photo.jpg": ("image/jpeg", jpeg(data / "images" / args.image)),
              "/speech.flac": ("audio/flac", flac_excerpt(data / "audio" / args.audio, args.audio_seconds))}
    with serve(routes) as base_url:
        return _on_stack(settings, base_url, args)


def _on_stack(settings: Settings, base_url: str, args: argparse.Namespace) -> list[dict]:
    stack.up(settings)
    fanout = start_fanout(settings)
    try:
        started = time.monotonic()
        jobs = jobctl.start_all(settings, resume=False, timeout_s=180)
        stamp = int(time.time())
        watcher = FindingsWatcher(settings, parts_of(f"x:mm-{stamp}-"))
        try:
            print(f"job ready in {time.monotonic() - started:.0f} s", flush=True)
            return run_phases(settings, stamp, base_url, watcher, args)
        finally:
            watcher.close()
            jobctl.stop_all(jobs)
    finally:
        jobctl.stop_local(fanout)
        stack.down(settings)


def run_phases(settings: Settings, stamp: int, base_url: str, watcher: FindingsWatcher,
               args: argparse.Namespace) -> list[dict]:
    media_rule = Rule(f"mm-media-{stamp}", 1, condition=MEDIA_RULE, stories=False)
    rules_client.publish(settings, [media_rule], wait=True)
    rows = []
    for rate in [float(r) for r in args.rates.split(",")]:
        for phase in ("media", "text"):
            tag, source = f"mm-{stamp}-{int(rate)}-{phase}", f"bench-mm-{int(rate)}-{phase}"
            rule_ids = [media_rule.rule_id]
            if phase == "text":
                text_rule = Rule(f"mm-text-{stamp}-{int(rate)}", 1, condition=TEXT_RULE.format(source=source),
                                 stories=False)
                rules_client.publish(settings, [text_rule], wait=True)
                rule_ids.append(text_rule.rule_id)
            load_before = round(os.getloadavg()[0], 2)
            alerts, sent = asyncio.run(run_phase(settings, rule_ids, tag, source, rate, args.duration,
                                                 base_url, args.drain))
            first = int(rate * args.warmup)
            row = {"rate": rate, "phase": phase, "duration_s": args.duration, "warmup_s": args.warmup,
                   "loadavg_1m": [load_before, round(os.getloadavg()[0], 2)],
                   "rules": {("text" if rule_id.startswith("mm-text") else "media"): {
                       "condition": MEDIA_RULE if rule_id == media_rule.rule_id else TEXT_RULE.format(source=source),
                       **summarize(entries, sent, first)} for rule_id, entries in alerts.items()},
                   "parts": summarize_parts(watcher, tag, sent, first)}
            print(format_row(row), flush=True)
            rows.append(row)
    return rows


def format_row(row: dict) -> str:
    out = []
    for name, rule in row["rules"].items():
        stages = " ".join(f"{rule['stages'][s]['p50_ms']:.0f}/{rule['stages'][s]['p99_ms']:.0f}" for s in STAGES) \
            if "stages" in rule else "-"
        out.append(f"{row['rate']:>4.0f}/s {row['phase']:<5} rule={name:<5} p50 {rule.get('p50_ms', float('nan')):>6.0f} "
                   f"p95 {rule.get('p95_ms', float('nan')):>6.0f} p99 {rule.get('p99_ms', float('nan')):>6.0f} "
                   f"max {rule.get('max_ms', float('nan')):>6.0f} recv {rule['received']}/{rule['sent']} "
                   f"stages p50/p99 ({'/'.join(STAGES)}): {stages}")
    parts = " ".join(f"{part} {v['p50_ms']:.0f}/{v['p99_ms']:.0f}" for part, v in row["parts"]["analysed_ms"].items())
    out.append(f"{'':>7} parts analysed p50/p99 ms: {parts}; last part: {row['parts']['last_part']}; "
               f"load {row['loadavg_1m'][0]}->{row['loadavg_1m'][1]}")
    return "\n".join(out)


def main() -> None:
    if sys.argv[1:2] == ["produce"]:
        produce(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,2", help="events per second, each event 3 parts")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--profile", default="tuned", choices=sorted(PROFILES))
    parser.add_argument("--image", default="ultralytics/bus.jpg", help="under <data_dir>/images")
    parser.add_argument("--audio", default="speech/jfk.flac", help="under <data_dir>/audio")
    parser.add_argument("--audio-seconds", type=float, default=8.0, help="excerpt length (0: all)")
    parser.add_argument("--drain", type=float, default=20.0, help="seconds to wait for alerts after the load")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = run(Settings.from_env(), args)
    emit(_no_nan({"host": host(), "profile": args.profile, "image": args.image, "audio": args.audio,
                  "audio_seconds": args.audio_seconds, "rows": rows}), args.out)


if __name__ == "__main__":
    main()
