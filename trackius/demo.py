"""The demo: the whole local system on one machine, with alerts printed as they arrive.

    stack up -> fan-out service -> analyze job -> sample rules (applied, acknowledged)
             -> sample events replayed -> alerts over the WebSocket feed, with their latency

Ctrl-C (or --duration) stops everything the demo started, the stack included if it was down.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from schemas.rule import load_rules_yaml
from services.feed_client import feed_url, follow
from trackius import jobctl, rules_client, stack
from trackius.replay import read_lines, replay
from trackius.settings import REPO_ROOT, Settings

SAMPLES = REPO_ROOT / "samples"


def format_alert(item: dict, received_ms: int) -> str:
    alert = item["alert"]
    latency = received_ms - alert["times"]["collected_at"]
    terms = ",".join(sorted({hit["term"] for hit in alert["evidence"]["hits"]}))
    excerpt = alert["excerpt"].replace("\n", " ")[:90]
    return (f"#{item['position']:<4} {latency:>5} ms  {alert['severity']:<8} {alert['rule_id']:<22} "
            f"{alert['content_key']:<24} [{terms}] {excerpt}")


async def print_feed(settings: Settings, rules: Iterable[str] | None = None, since: int | None = None,
                     stop: threading.Event | None = None) -> None:
    async for item in follow(feed_url(settings), rules=rules, since=since):
        print(format_alert(item, time.time_ns() // 1_000_000), flush=True)
        if stop is not None and stop.is_set():
            return


def feed_position(settings: Settings) -> int:
    """The fan-out's current position: following from here misses nothing produced later."""
    url = f"http://{settings.fanout_host}:{settings.fanout_port}/healthz"
    with urllib.request.urlopen(url, timeout=2) as response:
        return int(json.load(response)["position"])


def start_fanout(settings: Settings) -> subprocess.Popen:
    log = (settings.state_dir / "fanout.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "services.fanout"], cwd=REPO_ROOT,
                               env={**os.environ, **settings.to_env()}, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    url = f"http://{settings.fanout_host}:{settings.fanout_port}/healthz"
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    jobctl.stop_local(process)
    raise jobctl.JobError(f"the fan-out did not become healthy; see {settings.state_dir / 'fanout.log'}")


def run_demo(settings: Settings, rate: float, duration_s: float | None,
             rules_file: Path = SAMPLES / "rules.yaml", events_file: Path = SAMPLES / "events.jsonl") -> int:
    demo_dir = draw_screenshot(settings.state_dir / "demo")
    # The sample media are files: the shared data and the screenshot drawn for the demo. The
    # sample video is replayed every round: a dozen frames of it show the path without making
    # the two cores of a laptop-sized machine the bottleneck of the demo's alerts.
    settings = settings.replace(media_file_roots=f"{settings.data_dir}:{demo_dir}", video_max_frames=12)
    places = {"{data_dir}": settings.data_dir.as_posix(), "{demo_dir}": demo_dir.as_posix()}
    stack_was_up = all(server.healthy for server in stack.status(settings))
    stack.up(settings)
    children: dict[str, subprocess.Popen] = {}
    try:
        children["fanout"] = start_fanout(settings)
        print(f"fan-out: ws://{settings.fanout_host}:{settings.fanout_port}/feed")
        children.update(jobctl.start_all(settings))
        print(f"jobs running; Flink web UI: http://localhost:{settings.flink_rest_port} (analyze), "
              f"http://localhost:{settings.store_rest_port} (store)")
        rules = load_rules_yaml(rules_file.read_text(encoding="utf-8"), str(rules_file))
        rules_client.publish(settings, rules, wait=True)
        print(f"{len(rules)} rules active: {', '.join(rule.rule_id for rule in rules)}")
        lines = [_placed(line, places) for line in read_lines(events_file)]
        _run_feed_and_replay(settings, lines, rate, duration_s)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        jobctl.stop_all(children)
        if not stack_was_up:
            stack.down(settings)
    return 0


def _run_feed_and_replay(settings: Settings, lines: list[bytes], rate: float, duration_s: float | None) -> None:
    stop = threading.Event()
    feeder = threading.Thread(target=lambda: _replay_forever(settings, lines, rate, stop), daemon=True)
    print(f"replaying {len(lines)} sample events at {rate:g}/s (collected_at = send time)\n")
    print(f"{'pos':<5} {'latency':>8}  {'severity':<8} {'rule':<22} {'content':<24} evidence / excerpt")
    since = feed_position(settings)
    feeder.start()
    try:
        asyncio.run(asyncio.wait_for(print_feed(settings, since=since, stop=stop), duration_s))
    except TimeoutError:
        pass
    finally:
        stop.set()
        feeder.join(timeout=5)  # its producer must close before the stack goes down


def _replay_forever(settings: Settings, lines: list[bytes], rate: float, stop: threading.Event) -> None:
    """Replay the samples in rounds, with content keys fresh for each round of each demo run:
    the job and the fan-out drop an alert they have already sent (same rule, same content), so
    keys reused from an earlier round or an earlier demo would never alert again."""
    run = int(time.time()) % 100_000
    round_no = 0
    while not stop.is_set():
        replay(settings, [_with_round(line, f"d{run}r{round_no}") for line in lines], rate, stop=stop)
        round_no += 1


def draw_screenshot(directory: Path) -> Path:
    """A picture of a post whose text only the OCR can see: the outage rule fires on an image."""
    from PIL import Image, ImageDraw, ImageFont

    directory.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (720, 260), "white")
    draw = ImageDraw.Draw(image)
    draw.text((24, 40), "Binance support:", fill="black", font=ImageFont.load_default(size=40))
    draw.text((24, 120), "withdrawals paused until further notice", fill="black", font=ImageFont.load_default(size=34))
    image.save(directory / "screenshot.png")
    return directory


def _placed(line: bytes, places: dict[str, str]) -> bytes:
    """Sample media URIs name their folders by placeholder: filled in for this machine."""
    text = line.decode("utf-8", errors="surrogateescape")
    for placeholder, value in places.items():
        text = text.replace(placeholder, value)
    return text.encode("utf-8", errors="surrogateescape")


def _with_round(line: bytes, suffix: str) -> bytes:
    try:
        record = json.loads(line)
    except ValueError:
        return line  # a malformed sample stays malformed: it shows the dead-letter path
    if isinstance(record, dict) and isinstance(record.get("content_key"), str):
        record["content_key"] += f"-{suffix}"
        return json.dumps(record, ensure_ascii=False).encode()
    return line
