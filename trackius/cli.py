"""The `trackius` command line: the local stack, the job, rules, references, replay, the feed,
the analysis of single inputs and the demo.

Every subcommand reads settings once from the environment (TRACKIUS_*), and errors of ours
print one precise line and exit 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from schemas.errors import ConfigError, TrackiusError
from trackius.settings import Settings


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return args.run(settings, args) or 0
    except TrackiusError as exc:
        print(f"trackius: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackius", description="Real-time content alerting on Flink.")
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="the local Kafka broker and Cassandra node")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(run=_stack)

    job = commands.add_parser("job", help="run the analyze job locally or submit it to a cluster")
    job.add_argument("action", choices=["run", "submit", "cluster-up", "cluster-down"],
                     help="run: both jobs (analyze, store) on local MiniClusters with their web UIs; "
                          "submit: flink run -py both to a running cluster; cluster-up/down: the "
                          "standalone cluster in the apache-flink package")
    job.add_argument("--fresh", action="store_true", help="ignore the latest checkpoint")
    job.set_defaults(run=_job)

    rules = commands.add_parser("rules", help="apply, delete, list, check or test watch rules (rules.v1)")
    rules.add_argument("action", choices=["apply", "delete", "list", "check", "test"])
    rules.add_argument("target", nargs="?", help="a YAML rules file (apply, check) or a rule id (delete)")
    rules.add_argument("--rules", type=Path, dest="rules_file", help="test: the YAML rules file")
    rules.add_argument("--events", type=Path, help="test: ContentEvents, one JSON object per line")
    rules.add_argument("--wait", action="store_true", help="return once the job applies the rules")
    rules.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    rules.set_defaults(run=_rules)

    replay = commands.add_parser("replay", help="publish ContentEvents from a JSON-lines file")
    replay.add_argument("file", type=Path)
    replay.add_argument("--rate", type=float, default=100.0, help="events per second (default 100)")
    replay.add_argument("--keep-times", action="store_true", help="do not set collected_at to now")
    replay.set_defaults(run=_replay)

    tail = commands.add_parser("tail", help="print the WebSocket alert feed")
    tail.add_argument("--rules", help="comma-separated rule ids (default: all)")
    tail.add_argument("--since", type=int, help="resume after this feed position")
    tail.set_defaults(run=_tail)

    admin = commands.add_parser("admin", help="create topics and apply CQL migrations on existing servers")
    admin.add_argument("action", choices=["init"])
    admin.set_defaults(run=_admin)

    analyze = commands.add_parser("analyze", help="the findings the job computes for one input")
    analyze.add_argument("modality", choices=["text", "image", "video", "audio"])
    analyze.add_argument("input", nargs="+", help="text: the text; image, video, audio: files or URLs")
    analyze.add_argument("--rules", type=Path, help="a YAML rules file whose terms and names to look for "
                                                    "(image: also reads its text; audio, video: also "
                                                    "transcribes the speech)")
    analyze.add_argument("--refs", type=Path, help="image, video: a directory of reference images; "
                                                   "audio: of reference clips")
    analyze.add_argument("--progress", action="store_true",
                         help="video, audio: print partial findings as they come")
    _content_options(analyze)
    analyze.set_defaults(run=_analyze)

    match = commands.add_parser("match", help="test a query on texts read from standard input, one per line")
    match.add_argument("--query", required=True, help="a rule condition, e.g. '(bitcoin OR btc) NEAR/3 crash*'")
    _content_options(match)
    match.set_defaults(run=_match)

    evaluate = commands.add_parser("eval", help="measure the models on labelled data")
    evaluate.add_argument("target", choices=["sentiment", "spam", "image-id", "audio-id"])
    evaluate.add_argument("--data", type=Path,
                          help="sentiment: id<TAB>rating -4..4<TAB>text; spam: label<TAB>text (ham/spam)")
    evaluate.add_argument("--refs", type=Path, help="image-id, audio-id: a directory of reference images / clips")
    evaluate.add_argument("--negatives", type=Path,
                          help="image-id: a directory of images and videos that show none of the references; "
                               "audio-id: of audio that is none of the reference clips")
    evaluate.add_argument("--seed", type=int, default=0, help="image-id, audio-id: seed of the distortions (default 0)")
    evaluate.set_defaults(run=_eval)
    identify = commands.add_parser("identify", help="which reference image each file shows, or clip it plays")
    identify.add_argument("kind", choices=["image", "audio"])
    identify.add_argument("files", nargs="+", type=Path)
    identify.add_argument("--refs", type=Path, required=True, help="a directory of reference images or clips")
    identify.set_defaults(run=_identify)
    refs = commands.add_parser("refs", help="add, remove or list tracked reference media (Cassandra + refs.v1)")
    refs_actions = refs.add_subparsers(dest="action", required=True)
    for action, targets, help_text in (("add", "files", "sign and store files, announce them"),
                                       ("remove", "ref_ids", "delete references, announce it"),
                                       ("list", None, "the stored references, oldest first")):
        sub = refs_actions.add_parser(action, help=help_text)
        if targets:
            sub.add_argument("targets", nargs="+", metavar=targets.upper())
        sub.add_argument("--kind", choices=["image", "audio"], required=True)
        if action == "add":
            sub.add_argument("--name", help="the reference's name (default: the file name)")
        sub.set_defaults(run=_refs, targets=[], name=None)

    demo = commands.add_parser("demo", help="stack + job + fan-out + sample rules and events, alerts printed live")
    demo.add_argument("--rate", type=float, default=5.0, help="sample events per second (default 5)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    demo.set_defaults(run=_demo)
    return parser


def _stack(settings: Settings, args: argparse.Namespace) -> int:
    from trackius import stack

    if args.action == "up":
        stack.up(settings)
    elif args.action == "down":
        stack.down(settings)
    print(stack.format_status(stack.status(settings)))
    return 0


def _job(settings: Settings, args: argparse.Namespace) -> int:
    from trackius import jobctl

    if args.action == "submit":
        jobctl.submit(settings)
        print(f"submitted; Flink web UI: http://localhost:{settings.flink_rest_port}")
        return 0
    if args.action in ("cluster-up", "cluster-down"):
        (jobctl.cluster_up if args.action == "cluster-up" else jobctl.cluster_down)(settings)
        return 0
    processes = jobctl.start_all(settings, resume=not args.fresh)
    try:
        print(f"analyze job: Flink web UI http://localhost:{settings.flink_rest_port}; store job: "
              f"http://localhost:{settings.store_rest_port}; logs in {settings.state_dir}; Ctrl-C stops both")
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        return 1
    finally:
        jobctl.stop_all(processes)


def _warn_broad(rules: list) -> None:
    from udfs.query import matches_everything

    for rule in rules:
        if rule.active and matches_everything(rule):
            print(f"warning: rule {rule.rule_id} holds on content with no text and no media at all "
                  f"({rule.condition!r}): it would alert on nearly everything", file=sys.stderr)


def _rules(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.rule import load_rules_yaml
    from trackius import rules_client

    if args.action == "list":
        for rule in rules_client.current_rules(settings).values():
            print(json.dumps({"rule_id": rule.rule_id, "version": rule.version,
                              "deleted": rule.deleted, "condition": rule.condition}))
        return 0
    if args.action == "test":
        if not (args.rules_file and args.events):
            raise SystemExit("trackius rules test: give --rules FILE and --events FILE")
        from trackius.rulestest import rules_test

        rules = load_rules_yaml(args.rules_file.read_text(encoding="utf-8"), str(args.rules_file))
        _warn_broad(rules)
        for line in rules_test(settings, rules, args.events):
            print(line, flush=True)
        return 0
    if not args.target:
        raise SystemExit(f"trackius rules {args.action}: give a {'rule id' if args.action == 'delete' else 'file'}")
    if args.action == "delete":
        rules = [rules_client.deletion(settings, args.target)]
    else:
        path = Path(args.target)
        rules = load_rules_yaml(path.read_text(encoding="utf-8"), source=str(path))
        _warn_broad(rules)
        if args.action == "check":
            print(f"{len(rules)} rules are valid")
            return 0
    rules_client.publish(settings, rules, wait=args.wait, timeout_s=args.timeout)
    state = "active in the job" if args.wait else "published"
    for rule in rules:
        print(f"{rule.rule_id} v{rule.version} {'deleted' if rule.deleted else state}")
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from trackius.replay import read_lines, replay

    started = time.perf_counter()
    sent = replay(settings, read_lines(args.file), args.rate, restamp=not args.keep_times)
    print(f"sent {sent} events in {time.perf_counter() - started:.1f} s")
    return 0


def _tail(settings: Settings, args: argparse.Namespace) -> int:
    from trackius.demo import print_feed

    rules = args.rules.split(",") if args.rules else None
    asyncio.run(print_feed(settings, rules=rules, since=args.since))
    return 0


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from connectors import admin

    admin.ensure_topics(settings)
    print(f"migrations applied: {admin.migrate(settings) or 'none (up to date)'}")
    return 0


def _content_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", default="rss", help="for platform: filters (default rss)")
    parser.add_argument("--author", default="", help="for author: filters")
    parser.add_argument("--source", default="cli", help="for source: filters")
    parser.add_argument("--lang", help="the language the platform declares (default: identified)")


def _metadata(args: argparse.Namespace) -> dict[str, str | None]:
    return {"platform": args.platform, "author": args.author, "source": args.source, "lang": args.lang}


def _analyze(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.codec import encode
    from schemas.rule import load_rules_yaml
    from trackius import textcmd
    from udfs.query import RuleIndex

    if args.modality != "text":
        from trackius.mediacmd import analyze

        for line in analyze(settings, args.modality, args.input, args.progress, args.rules, args.refs):
            print(line, flush=True)
        return 0
    rules = load_rules_yaml(args.rules.read_text(encoding="utf-8"), str(args.rules)) if args.rules else []
    event = textcmd.event_for(" ".join(args.input), 0, **_metadata(args))
    print(encode(textcmd.analyzer(settings).analyse(event, RuleIndex(rules))))
    return 0


def _match(settings: Settings, args: argparse.Namespace) -> int:
    from trackius import textcmd

    for result in textcmd.match_lines(textcmd.analyzer(settings), args.query, sys.stdin, **_metadata(args)):
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


def _eval(settings: Settings, args: argparse.Namespace) -> int:
    from trackius import textcmd

    if args.target in ("image-id", "audio-id"):
        return _eval_media_id(settings, args)
    if args.data is None or not args.data.is_file():
        raise ConfigError(f"--data {args.data}: no such file")
    if args.target == "sentiment":
        result = textcmd.eval_sentiment(textcmd.analyzer(settings), args.data)
    else:
        from udfs.classifier import SpamClassifier, evaluate, read_labelled

        classifier = SpamClassifier.load(settings.project_model_dir)
        if classifier is None:
            raise ConfigError(f"the spam classifier under {settings.project_model_dir} is missing or invalid")
        result = evaluate(classifier, read_labelled(args.data))
    print(json.dumps(result))
    return 0


def _eval_media_id(settings: Settings, args: argparse.Namespace) -> int:
    for name in ("refs", "negatives"):
        if getattr(args, name) is None or not getattr(args, name).is_dir():
            raise ConfigError(f"eval {args.target}: --{name} must be a directory")
    if args.target == "audio-id":
        from trackius import audioid

        result = audioid.evaluate(args.refs, args.negatives, seed=args.seed)
    else:
        from trackius import imageid

        result = imageid.evaluate(args.refs, args.negatives, settings.model_dir, seed=args.seed)
    print(json.dumps(result))
    return 0


def _identify(settings: Settings, args: argparse.Namespace) -> int:
    if not args.refs.is_dir():
        raise ConfigError(f"--refs {args.refs}: not a directory")
    if args.kind == "audio":
        from trackius import audioid

        results = audioid.identify(args.refs, args.files)
    else:
        from trackius import imageid

        results = imageid.identify(args.refs, args.files, settings.model_dir)
    for result in results:
        print(json.dumps(result), flush=True)
    return 0


def _refs(settings: Settings, args: argparse.Namespace) -> int:
    from trackius.mediacmd import refs_command
    from trackius.refs_client import RefsFailed

    try:
        for line in refs_command(settings, args.action, args.kind, args.targets, args.name):
            print(line, flush=True)
    except RefsFailed as failed:
        print(f"trackius: {failed}", file=sys.stderr)
        return 1
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from trackius.demo import run_demo

    return run_demo(settings, rate=args.rate, duration_s=args.duration)


if __name__ == "__main__":
    sys.exit(main())
