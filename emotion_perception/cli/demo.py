"""`emotion-perception demo`: the ROS 2 pipeline on the bundled frames, with the /emotion stream printed.

Starts image_source_node (bundled public-domain frames, looping) and landmark_emotion_node as real ROS 2
processes on a private domain id with discovery limited to this machine, listens to `emotion`,
`emotion/detail` and `ground_truth/emotion`, prints one line per /emotion message, then stops both nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from emotion_perception.core.errors import CommandError
from emotion_perception.data.sources import DEMO_FRAMES
from emotion_perception.ros.env import localhost_environment

NODES = (
    ("landmark_emotion_node", ["-p", "autostart:=true", "-p", "reliability:=reliable"]),
    # The first frame waits for the landmark node on image and for this command's listener on the ground truth
    # (its truth was once published before the listener was discovered: the first line came without it).
    ("image_source_node", ["-p", f"source:={DEMO_FRAMES}", "-p", "loop:=true", "-p", "wait_for_subscribers:=1",
                           "-p", "wait_for_scorer:=true"]),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run image_source_node + landmark_emotion_node on bundled frames and print /emotion",
        description="Starts the source and landmark nodes as ROS 2 processes (private domain id, localhost "
                    "only) on the bundled public-domain frames and prints the /emotion stream.")
    parser.add_argument("--frames", type=int, default=10, help="stop after this many /emotion messages")
    parser.add_argument("--timeout", type=float, default=90.0, help="give up after this many seconds")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second published by the source")
    parser.add_argument("--model", default="", help="forest model file (.npz) for the landmark node; "
                                                    "default: the shipped model")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.timeout <= 0 or not 0.1 <= args.rate <= 1000:
        raise CommandError("--frames must be >= 1, --timeout > 0 and --rate in [0.1, 1000]")
    domain = 200 + os.getpid() % 32  # 200..231: away from the default 0 and the test sessions' 100..199
    os.environ.update(localhost_environment(domain))
    logs = Path(tempfile.mkdtemp(prefix="emotion-demo-"))
    print(f"demo: {len(list(DEMO_FRAMES.glob('demo_*.jpg')))} bundled frames (NASA astronaut photo, public "
          f"domain) -> image_source_node -> landmark_emotion_node; ROS_DOMAIN_ID={domain}, localhost only",
          flush=True)
    options = {"image_source_node": ["-p", f"rate:={float(args.rate)}"],
               "landmark_emotion_node": ["-p", f"model_path:={json.dumps(str(args.model))}"]}
    processes = {name: _start(name, extra + options[name], logs) for name, extra in NODES}
    try:
        count = _listen(args.frames, args.timeout, processes, logs)
    finally:
        for process in processes.values():
            _stop(process)
    if count == 0:
        raise CommandError(f"no /emotion message within {args.timeout:g} s; node logs kept in {logs}")
    shutil.rmtree(logs, ignore_errors=True)
    return 0


def _start(name: str, extra: list[str], logs: Path) -> subprocess.Popen:
    with (logs / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"emotion_perception.ros.nodes.{name}", "--ros-args", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )


def _stop(process: subprocess.Popen) -> None:
    """SIGINT (clean shutdown), then SIGKILL of this child if it has not ended after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Error" in line]
    return (errors or lines or ["(no output)"])[-1].strip()


def _listen(wanted: int, timeout: float, processes: dict[str, subprocess.Popen], logs: Path) -> int:
    """Print /emotion lines until `wanted` arrived or the deadline; the number printed."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    context = Context()
    rclpy.init(context=context, args=[])
    node = rclpy.create_node("emotion_demo", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    printer = _Printer()
    node.create_subscription(String, "emotion", lambda m: printer.emotion(m.data), 50)
    node.create_subscription(String, "emotion/detail", lambda m: printer.detail(m.data, node), 50)
    node.create_subscription(String, "ground_truth/emotion", lambda m: printer.truth(m.data), 50)
    deadline = time.monotonic() + timeout
    try:
        while printer.printed < wanted and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            for name, process in processes.items():
                if process.poll() is not None:
                    raise CommandError(f"{name} exited with status {process.returncode}: "
                                       f"{_last_error(logs / f'{name}.log')} (log: {logs / f'{name}.log'})")
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    printer.summary()
    return printer.printed


class _Printer:
    """Pairs each /emotion label with its frame's emotion/detail document and prints one line."""

    def __init__(self) -> None:
        self.labels: deque[str] = deque()
        self.details: deque[tuple[dict[str, Any], float]] = deque()
        self.truths: dict[tuple[int, int], str] = {}
        self.printed = 0
        self.without_face = 0
        self.latencies: list[float] = []

    def emotion(self, label: str) -> None:
        self.labels.append(label)
        self._flush()

    def detail(self, data: str, node: Any) -> None:
        doc = json.loads(data)
        stamp_ns = doc["stamp"]["sec"] * 1_000_000_000 + doc["stamp"]["nanosec"]
        end_to_end = (node.get_clock().now().nanoseconds - stamp_ns) / 1e6
        if doc["faces"]:
            self.details.append((doc, end_to_end))
            self._flush()
        else:
            self.without_face += 1
            print(f"      (frame {doc['stamp']['sec']}.{doc['stamp']['nanosec']:09d}: no face; nothing on /emotion)",
                  flush=True)

    def truth(self, data: str) -> None:
        record = json.loads(data)
        self.truths[(record["stamp"]["sec"], record["stamp"]["nanosec"])] = record["label"]
        self._flush()

    def _flush(self) -> None:
        """Print the paired lines whose ground truth is in (or known to be missing: a later frame's came)."""
        while self.labels and self.details:
            doc, end_to_end = self.details[0]
            stamp = (doc["stamp"]["sec"], doc["stamp"]["nanosec"])
            if stamp not in self.truths and not any(other > stamp for other in self.truths):
                return  # its ground truth is still on its way
            label = self.labels.popleft()
            self.details.popleft()
            face = doc["faces"][0]
            truth = self.truths.get(stamp)
            self.printed += 1
            self.latencies.append(end_to_end)
            print(f"{self.printed:4d}  /emotion {label:<9} face id {face['id']:<3} confidence {face['confidence']:.2f}"
                  f"  latency {end_to_end:6.1f} ms (node {doc['latency_ms'] or 0:.1f} ms)"
                  + (f"  truth {truth}" if truth else ""), flush=True)

    def summary(self) -> None:
        if not self.printed:
            return
        latencies = sorted(self.latencies)
        print(f"demo: {self.printed} /emotion messages, {self.without_face} frame(s) without a face; "
              f"end-to-end latency median {latencies[len(latencies) // 2]:.1f} ms", flush=True)
