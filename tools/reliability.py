"""The reliability suite at full size (the tests run it bounded: `pytest test -k reliability`). Figures and the
commands that gave them: docs/reliability.md.

    .venv/bin/python tools/reliability.py cli                   # every bad-input case, each as its own process
    .venv/bin/python tools/reliability.py signals --moments 6   # SIGINT/SIGTERM, 6 moments per command (24 in all)
    .venv/bin/python tools/reliability.py fuzz --frames 10000   # fuzzed frames into each frame-taking node
    .venv/bin/python tools/reliability.py soak --frames 100000 --rate 100
    .venv/bin/python tools/reliability.py overload --seconds 60 [--reliable]
    .venv/bin/python tools/reliability.py phantoms --frames 20000
    ... [--json OUT.json]                                          # the figures also as JSON

The harness is test/reliability_cli.py, test/reliability_nodes.py and test/reliability_faces.py. DDS traffic stays
on this machine: a private ROS_DOMAIN_ID, localhost discovery, the loopback-only Fast DDS profile.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]

from emotion_perception.ros.env import localhost_environment  # noqa: E402

os.environ.update(localhost_environment(200 + os.getpid() % 32))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")


def ros_context() -> Any:
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    return context


def run_cli(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from reliability_cli import run_cli_cases

    def show(outcome: Any) -> None:
        print(f"{'FAIL' if outcome.problems else 'ok  '} {outcome.case.name}: "
              f"{outcome.problems or (outcome.error_lines or [''])[0][:110]}", flush=True)

    outcomes = run_cli_cases(work, show, separate_processes=not args.in_process)
    return {"cases": len(outcomes), "failing": {o.case.name: o.problems for o in outcomes if o.problems},
            "tracebacks": sum(o.status is None or "Traceback" in o.stderr for o in outcomes),
            "exit_status_2": sum(o.status == 2 for o in outcomes),
            "left_behind": sum(bool(o.changed) for o in outcomes)}


def run_signals(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from reliability_cli import run_signal_trials

    def show(o: Any) -> None:
        print(f"{'FAIL' if o.problems else 'ok  '} {o.command:13s} {o.signal:7s} at {o.delay:6.2f} s -> exit "
              f"{o.status} {o.problems or ''}", flush=True)

    outcomes = run_signal_trials(work, args.moments, args.seed, show)
    return {"moments": len(outcomes), "failing": [f"{o.command} {o.signal} {o.delay:.2f} s: {o.problems}"
                                                  for o in outcomes if o.problems],
            "interrupted": sum(o.status in (130, 143) for o in outcomes),
            "finished_before_the_signal": sum(o.status <= 0 for o in outcomes),
            "exit_statuses": sorted({o.status for o in outcomes})}


def run_nodes(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import reliability_nodes as nodes

    context = ros_context()
    if args.command == "fuzz":
        results = {}
        for kind in args.nodes.split(","):
            result = nodes.run_fuzz(context, work, kind, args.frames, args.rate, args.seed)
            result.pop("log_tail")
            print(json.dumps(result), flush=True)
            results[kind] = result
        return results
    if args.command == "soak":
        result = nodes.run_soak(context, work, args.frames, args.rate, args.node, args.encoding)
        result.pop("rss_first_kb")
        return result
    return nodes.run_overload(context, work, args.seconds, args.factor, args.reliable)


def run_phantoms(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from reliability_faces import count_phantoms
    from reliability_nodes import demo_frames

    from emotion_perception.core.params import defaults
    from emotion_perception.models.landmark_model import EmotionModel
    from emotion_perception.ros.params import LANDMARK_NODE_PARAMS

    params, model, frames = defaults(LANDMARK_NODE_PARAMS), EmotionModel.load(), demo_frames("mono8")
    runs = {
        "demo frames + the reported false face (score 0.08, a quarter of the searches), node defaults":
            (args.frames, params),
        "the same with every detection published at once (confirm_detections 1, the behaviour before)":
            (args.baseline_frames, {**params, "confirm_detections": 1}),
    }
    results = {}
    for name, (count, run_params) in runs.items():
        results[name] = count_phantoms(frames, count, run_params, model, hold=args.hold, phantom_rate=0.25,
                                       noise=args.noise)
        print(name, json.dumps(results[name]), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    commands = parser.add_subparsers(dest="command", required=True)
    cli = commands.add_parser("cli", help="every bad-input case of the command line")
    cli.add_argument("--in-process", action="store_true", help="run the cases in this process (faster)")
    signals = commands.add_parser("signals", help="SIGINT and SIGTERM at random moments of the long commands")
    signals.add_argument("--moments", type=int, default=6, help="signals per command (default 6)")
    signals.add_argument("--seed", type=int, default=0)
    fuzz = commands.add_parser("fuzz", help="fuzzed frames into the nodes")
    fuzz.add_argument("--frames", type=int, default=10_000)
    fuzz.add_argument("--rate", type=float, default=400.0)
    fuzz.add_argument("--nodes", default="landmark,resnet,injector")
    fuzz.add_argument("--seed", type=int, default=0)
    soak = commands.add_parser("soak", help="a long run with the node's memory sampled")
    soak.add_argument("--frames", type=int, default=100_000)
    soak.add_argument("--rate", type=float, default=100.0)
    soak.add_argument("--node", default="landmark", choices=("landmark", "resnet", "injector"))
    soak.add_argument("--encoding", default="bgr8", choices=("bgr8", "mono8"))
    overload = commands.add_parser("overload", help="frames at a multiple of the node's processing rate")
    overload.add_argument("--seconds", type=float, default=60.0)
    overload.add_argument("--factor", type=float, default=4.0)
    overload.add_argument("--reliable", action="store_true", help="reliable QoS (default best effort)")
    phantoms = commands.add_parser("phantoms", help="phantom face ids over long runs of the node's per-frame step")
    phantoms.add_argument("--frames", type=int, default=20_000)
    phantoms.add_argument("--baseline-frames", type=int, default=2_000, help="frames of the run as before")
    phantoms.add_argument("--hold", type=int, default=30, help="frames each demo image is held (default 30)")
    phantoms.add_argument("--noise", type=float, default=2.0, help="camera noise, grey levels (default 2)")
    args = parser.parse_args()
    runners = {"cli": run_cli, "signals": run_signals, "fuzz": run_nodes, "soak": run_nodes, "overload": run_nodes,
               "phantoms": run_phantoms}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"reliability-{args.command}-") as work:
        figures = runners[args.command](args, Path(work))
    figures = {"command": " ".join(sys.argv[1:]), "seconds": round(time.monotonic() - start, 1), **figures}
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
