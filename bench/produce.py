"""Load generator, run as its own process: text events at a fixed rate for a fixed time.

The texts are real posts (the tweets of the VADER ground truth and the SMS collection), each
prefixed with "benchmark:" so every event matches the benchmark rule, and its `collected_at` is
stamped right before the send, so the latency a client computes is Kafka produce -> WebSocket
receive.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.text_core import corpus
from connectors.kafka import producer
from trackius.replay import paced
from trackius.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--tag", required=True, help="content keys are x:<tag>-<n>")
    args = parser.parse_args()
    settings = Settings.from_env()
    texts = [f"benchmark: {text}" for text in corpus(settings)]
    client = producer(settings, linger_ms=1)
    total = int(args.rate * args.duration)
    for n in paced(range(total), args.rate):
        now = time.time_ns() // 1_000_000
        record = {"content_key": f"x:{args.tag}-{n}", "platform": "x", "source": "bench",
                  "author": "@bench", "published_at": now, "collected_at": now, "text": texts[n % len(texts)]}
        client.send(settings.topics.content_events, json.dumps(record).encode())
    client.flush()
    client.close()
    print(json.dumps({"sent": total}))


if __name__ == "__main__":
    main()
