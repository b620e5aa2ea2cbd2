"""The nodes under hostile input, over real rclpy and Fast DDS: fuzzed frames (every malformed one counted, none
crashes a node), a soak with the node's resident memory sampled, and an overload at a multiple of the node's own
processing rate (latency that does not grow; received + lost = published). Frames come from a separate publisher
process (`python test/reliability_nodes.py publish ...`) that stamps them as a camera at a steady rate would, so
that the nodes' lost-frame estimate can be checked against what was really published.

Used by test/test_reliability_nodes.py (bounded) and tools/reliability.py (full figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TEST = Path(__file__).resolve().parent
REPO = TEST.parent
if str(TEST) not in sys.path:  # run as a script: the helpers beside it
    sys.path.insert(0, str(TEST))

ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "bgr8", "8UC3", "rgb8", "bgra8", "rgba8")
CHANNELS = {"mono8": (1, 1), "8UC1": (1, 1), "mono16": (1, 2), "16UC1": (1, 2), "bgr8": (3, 1), "8UC3": (3, 1),
            "rgb8": (3, 1), "bgra8": (4, 1), "rgba8": (4, 1)}
BAD_ENCODINGS = ("", "yuv422", "bayer_rggb8", "32FC1", "MONO8", "bgr8 ", "jpeg", "\u00e9", "x" * 300)
NODES = {
    "landmark": ("emotion_perception.ros.nodes.landmark_emotion_node", "landmark_emotion_node", "emotion/detail"),
    "resnet": ("emotion_perception.ros.nodes.resnet_emotion_node", "resnet_emotion_node", "emotion_resnet/detail"),
    "injector": ("emotion_perception.ros.nodes.adversarial_injector_node", "adversarial_injector_node",
                 "image_attacked"),
}


# --- frames ------------------------------------------------------------------------------------------------


@dataclass
class Fields:
    """The fields of one sensor_msgs/Image, consistent or not, and whether the generator made it malformed."""

    encoding: str
    height: int
    width: int
    step: int
    data: bytes
    is_bigendian: int = 0
    malformed: bool = False
    kind: str = "valid"


def fuzz_fields(rng: np.random.Generator) -> Fields:
    """One fuzzed frame: a third valid (every encoding, odd sizes, padded rows, big-endian 16-bit), the rest broken
    one way each: unknown encodings, empty, truncated or padded data, too small a step, sizes declared far beyond
    the data (up to 2^32 - 1), more pixels than allowed."""
    encoding = str(rng.choice(ENCODINGS))
    channels, depth = CHANNELS[encoding]
    height, width = int(rng.integers(1, 97)), int(rng.integers(1, 129))
    row = width * channels * depth
    step = row + int(rng.choice([0, 0, 0, 1, 3, 64]))
    data_size = step * height
    kind = str(rng.choice(["valid"] * 6 + ["encoding", "empty", "zero_size", "truncated", "padded", "step",
                                           "huge_declared", "too_many_pixels", "no_data", "one_byte_short",
                                           "step_overflow"]))
    big = int(rng.integers(0, 2)) if depth == 2 else 0
    if kind == "valid":
        return Fields(encoding, height, width, step, rng.bytes(data_size), big)
    if kind == "encoding":
        return Fields(str(rng.choice(BAD_ENCODINGS)), height, width, step, rng.bytes(data_size), 0, True, kind)
    if kind == "empty":
        return Fields(encoding, 0, 0, 0, b"", 0, True, kind)
    if kind == "zero_size":
        zero_height = rng.random() < 0.5
        return Fields(encoding, 0 if zero_height else height, width if zero_height else 0, step,
                      rng.bytes(data_size), big, True, kind)
    if kind == "truncated":
        return Fields(encoding, height, width, step, rng.bytes(int(rng.integers(0, data_size))), big, True, kind)
    if kind == "padded":
        return Fields(encoding, height, width, step, rng.bytes(data_size + int(rng.integers(1, 4096))), big, True,
                      kind)
    if kind == "step":
        return Fields(encoding, height, width, max(0, row - int(rng.integers(1, row + 1))), rng.bytes(data_size), big,
                      True, kind)
    if kind == "huge_declared":
        huge = int(rng.choice([2**16, 2**24, 2**31 - 1, 2**32 - 1]))
        return Fields(encoding, huge, int(rng.choice([1, width, huge])), step, rng.bytes(data_size), big, True, kind)
    if kind == "too_many_pixels":  # 20 M pixels declared, more than the nodes' max_image_pixels
        return Fields("mono8", 4000, 5000, 5000, rng.bytes(64), 0, True, kind)
    if kind == "no_data":
        return Fields(encoding, height, width, step, b"", big, True, kind)
    if kind == "one_byte_short":
        return Fields(encoding, height, width, step, rng.bytes(data_size - 1), big, True, kind)
    # step_overflow: a step whose product with the height overflows 32 bits
    return Fields(encoding, 65536, width, 2**31 - 1, rng.bytes(data_size), big, True, "step_overflow")


def fuzz_frames(count: int, seed: int) -> Iterator[Fields]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield fuzz_fields(rng)


def demo_frames(encoding: str = "bgr8") -> list[np.ndarray]:
    """The bundled demo frames (640x480), as the camera of a still scene would give them."""
    from emotion_perception.core.images import read_bgr, to_gray_u8
    from emotion_perception.data.sources import DEMO_FRAMES

    frames = [read_bgr(path) for path in sorted(DEMO_FRAMES.glob("demo_*.jpg"))]
    return [to_gray_u8(f) for f in frames] if encoding == "mono8" else frames


# --- the publisher process ---------------------------------------------------------------------------------


def publish(args: argparse.Namespace) -> dict[str, Any]:
    """Publish `count` frames at `rate` on `topic`, stamped start + i / rate (a camera's steady clock; start: the
    wall clock when publishing begins), whatever the publisher's own delays; returns what was published."""
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from emotion_perception.core.frames import encode_frame

    rclpy.init()
    node = rclpy.create_node("reliability_publisher", namespace=args.namespace)
    policy = ReliabilityPolicy.RELIABLE if args.reliable else ReliabilityPolicy.BEST_EFFORT
    publisher = node.create_publisher(Image, "image", QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=args.depth,
                                                                  reliability=policy))
    deadline = time.monotonic() + 60
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if args.kind == "fuzz":
        frames: Iterator[tuple[Fields | None, Image]] = (
            (f, Image(encoding=f.encoding, height=f.height, width=f.width, step=f.step, is_bigendian=f.is_bigendian,
                      data=f.data)) for f in fuzz_frames(args.count, args.seed))
    else:
        pictures = []
        for picture in demo_frames(args.kind):
            encoding, height, width, step, data = encode_frame(picture)
            pictures.append((None, Image(encoding=encoding, height=height, width=width, step=step, data=data)))
        frames = (pictures[i % len(pictures)] for i in range(args.count))
    period = 1.0 / args.rate
    start = time.monotonic() + 0.5
    start_ns = time.time_ns() + 500_000_000
    malformed, late = 0, 0.0
    for i, (fields, msg) in enumerate(frames):
        due = start + i * period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        late = max(late, time.monotonic() - due)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(start_ns + round(i * period * 1e9), 10**9)
        msg.header.frame_id = "camera"
        publisher.publish(msg)
        malformed += bool(fields and fields.malformed)
    seconds = time.monotonic() - start
    time.sleep(0.5)
    node.destroy_node()
    rclpy.try_shutdown()
    return {"published": args.count, "malformed": malformed, "seconds": round(seconds, 2), "start_ns": start_ns,
            "rate_hz": round(args.count / seconds, 1), "latest_ms": round(1000 * late, 1)}


def start_publisher(namespace: str, kind: str, count: int, rate: float, reliable: bool = True, seed: int = 0,
                    depth: int = 1) -> subprocess.Popen:
    """The publisher process (its JSON summary on stdout when it ends)."""
    command = [sys.executable, str(Path(__file__).resolve()), "publish", namespace, kind, str(count), str(rate),
               "--seed", str(seed), "--depth", str(depth)]
    if reliable:
        command.append("--reliable")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TEST)]), PYTHONUNBUFFERED="1")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


# --- a node under test -------------------------------------------------------------------------------------


@dataclass
class Watched:
    """A node process, its outputs and diagnostics as a probe sees them, and its resident memory over time."""

    process: Any  # ros_helpers.NodeProcess
    probe: Any  # ros_helpers.Probe
    name: str
    diagnostics: list[Any]
    outputs: list[Any]
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, kB)
    arrivals: list[float] = field(default_factory=list)  # monotonic time each output arrived

    def diag(self) -> dict[str, str] | None:
        from ros_helpers import diagnostic_values

        return diagnostic_values(self.diagnostics, f"/{self.name}")

    def counts(self) -> dict[str, int]:
        values = self.diag() or {}
        keys = ("received_frames", "processed_frames", "bad_frames", "dropped_frames", "errors", "lost_frames")
        return {k: int(values[k]) for k in keys if k in values}

    def rss_kb(self) -> int:
        text = Path(f"/proc/{self.process.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("VmRSS:")))


def watch_node(context: Any, work: Path, kind: str, namespace: str, params: dict[str, Any]) -> Watched:
    """Start node `kind` (landmark, resnet, injector) in `namespace` and a probe collecting its diagnostics and its
    main output (detail documents, or the injector's frames)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from ros_helpers import Probe, start_node
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    module, name, output = NODES[kind]
    process = start_node(module, work, namespace, {"diagnostics_period": 0.2, **params})
    probe = Probe(context, namespace, "reliability_probe")
    diagnostics = probe.collect(DiagnosticArray, "/diagnostics", depth=10)
    watched = Watched(process, probe, f"{namespace.strip('/')}/{name}", diagnostics, [])
    msg_type = Image if kind == "injector" else String

    def arrived(msg: Any) -> None:
        watched.outputs.append(msg if kind != "injector" else (msg.header.stamp.sec, msg.header.stamp.nanosec))
        watched.arrivals.append(time.monotonic())

    probe.node.create_subscription(msg_type, output, arrived, 1000)
    ready = probe.spin_until(lambda: watched.diag() is not None or not process.alive(), 120)
    if not ready or not process.alive():
        probe.destroy()
        process.stop()
        raise AssertionError(f"{name} did not come up; log:\n{process.log()}")
    return watched


def run_publisher(watched: Watched, publisher: subprocess.Popen, timeout: float,
                  rss_every: float | None = None) -> dict[str, Any]:
    """Spin the probe while the publisher runs (sampling the node's memory every `rss_every` s); its summary."""
    start, next_sample = time.monotonic(), 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal next_sample
        while not stop.is_set():
            if watched.process.alive():
                watched.rss.append((round(time.monotonic() - start, 1), watched.rss_kb()))
            stop.wait(rss_every)

    sampler = threading.Thread(target=sample, daemon=True) if rss_every else None
    if sampler:
        sampler.start()
    try:
        finished = watched.probe.spin_until(lambda: publisher.poll() is not None, timeout)
    finally:
        stop.set()
    if not finished:
        publisher.kill()
    out, err = publisher.communicate()
    if publisher.returncode != 0:
        raise AssertionError(f"publisher failed ({publisher.returncode}): {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def settle(watched: Watched, timeout: float = 30.0, passes_every_frame: bool = False) -> dict[str, int]:
    """The node's counts once it has dealt with every frame it received (and its diagnostics say so twice). A node
    that `passes_every_frame` on (the injector: a bad frame too, untouched) counts each as processed."""
    seen: list[dict[str, int]] = []
    parts = ("processed_frames",) if passes_every_frame else ("processed_frames", "bad_frames", "dropped_frames",
                                                              "errors")

    def settled() -> bool:
        counts = watched.counts()
        if not counts:
            return False
        seen.append(counts)
        done = counts["received_frames"] == sum(counts.get(k, 0) for k in parts) if "processed_frames" in counts \
            else True
        return done and len(seen) > 10 and seen[-10] == counts

    watched.probe.spin_until(settled, timeout)
    return watched.counts()


def close(watched: Watched) -> dict[str, Any]:
    """Stop the node; whether it was still alive and its exit status."""
    alive = watched.process.alive()
    watched.probe.destroy()
    watched.process.stop()
    return {"alive_at_end": alive, "exit_status": watched.process.process.returncode}


# --- the three runs ----------------------------------------------------------------------------------------


def run_fuzz(context: Any, work: Path, kind: str, count: int, rate: float = 400.0, seed: int = 0) -> dict[str, Any]:
    """`count` fuzzed frames into node `kind` over reliable QoS: published, malformed, and the node's counts."""
    namespace = f"/fuzz_{kind}_{os.getpid()}"
    params = {"reliability": "reliable"}
    if kind == "resnet":
        params.update(device="cpu", cpu_threads=1)
    watched = watch_node(context, work, kind, namespace, params)
    try:
        published = run_publisher(watched, start_publisher(namespace, "fuzz", count, rate, seed=seed),
                                  timeout=count / rate + 300)
        counts = settle(watched, passes_every_frame=kind == "injector")
        if kind == "injector":  # every frame comes out again (bad ones untouched)
            watched.probe.spin_until(lambda: len(watched.outputs) >= counts.get("received_frames", 0), 20)
            counts["republished"] = len(watched.outputs)
    finally:
        ended = close(watched)
    return {"node": kind, **published, **counts, **ended, "log_tail": watched.process.log()[-1500:]}


def run_soak(context: Any, work: Path, count: int, rate: float, kind: str = "landmark",
             encoding: str = "bgr8", rss_every: float = 1.0) -> dict[str, Any]:
    """`count` demo frames at `rate` into node `kind` (best effort, as a camera): its memory over the run."""
    namespace = f"/soak_{kind}_{os.getpid()}"
    watched = watch_node(context, work, kind, namespace, {})
    try:
        published = run_publisher(watched, start_publisher(namespace, encoding, count, rate, reliable=False),
                                  timeout=count / rate + 300, rss_every=rss_every)
        counts = settle(watched)
    finally:
        ended = close(watched)
    samples = [kb for _, kb in watched.rss]
    warm = max(1, len(samples) // 10)  # after the first tenth of the run (imports, caches, DDS pools)
    reference = float(np.median(samples[warm: warm + 5])) if len(samples) > warm else float("nan")
    final = float(np.median(samples[-5:])) if samples else float("nan")
    return {"node": kind, **published, **counts, **ended, "rss_samples": len(samples),
            "rss_reference_kb": reference, "rss_final_kb": final, "rss_max_kb": max(samples, default=0),
            "rss_growth_percent": round(100 * (final - reference) / reference, 2) if samples else None,
            "rss_first_kb": samples[0] if samples else None}


def run_overload(context: Any, work: Path, seconds: float, factor: float = 4.0, reliable: bool = False,
                 max_rate: float = 400.0) -> dict[str, Any]:
    """landmark_emotion_node detecting on every frame (its slowest setting) fed at `factor` times the rate it can
    process for `seconds`: latency of the first and last 10 s, and received + lost against published."""
    namespace = f"/overload_{os.getpid()}"
    params = {"detect_every": 1, "detect_tiles": 1, "reliability": "reliable" if reliable else "best_effort"}
    watched = watch_node(context, work, "landmark", namespace, params)
    try:  # the node's own rate: 5 s of frames it can take (8 Hz), then its processing time
        run_publisher(watched, start_publisher(namespace, "bgr8", 40, 8.0, reliable), timeout=120)
        calibration = settle(watched)
        processing_ms = float((watched.diag() or {}).get("processing_p50_ms", "nan"))
        rate = min(max_rate, factor * 1000.0 / processing_ms)
        watched.outputs.clear()
        published = run_publisher(watched, start_publisher(namespace, "bgr8", round(rate * seconds), rate, reliable),
                                  timeout=seconds + 300)
        counts = settle(watched)
    finally:
        ended = close(watched)
    details = [json.loads(m.data) for m in watched.outputs]
    at = np.array([(d["stamp"]["sec"] * 10**9 + d["stamp"]["nanosec"] - published["start_ns"]) / 1e9
                   for d in details])
    latency = np.array([d["latency_ms"] if d["latency_ms"] is not None else np.nan for d in details])
    first, last = latency[at < 10], latency[at > at.max() - 10] if len(at) else latency
    received = counts["received_frames"] - calibration["received_frames"]
    lost = counts["lost_frames"] - calibration["lost_frames"]
    return {
        "node_processing_ms": processing_ms, "rate_hz": round(rate, 1), **published, "received": received,
        "lost_estimated": lost, "processed": counts["processed_frames"] - calibration["processed_frames"],
        "dropped": counts["dropped_frames"] - calibration["dropped_frames"],
        "accounting_error_percent": round(100 * (received + lost - published["published"]) / published["published"],
                                          2),
        "latency_p99_first_10s_ms": round(float(np.nanpercentile(first, 99)), 1) if len(first) else None,
        "latency_p99_last_10s_ms": round(float(np.nanpercentile(last, 99)), 1) if len(last) else None,
        "latency_p50_ms": round(float(np.nanpercentile(latency, 50)), 1) if len(latency) else None,
        "details": len(details), **ended,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the reliability harness's publisher process")
    commands = parser.add_subparsers(dest="command", required=True)
    pub = commands.add_parser("publish")
    pub.add_argument("namespace")
    pub.add_argument("kind", choices=("fuzz", "bgr8", "mono8"))
    pub.add_argument("count", type=int)
    pub.add_argument("rate", type=float)
    pub.add_argument("--seed", type=int, default=0)
    pub.add_argument("--depth", type=int, default=1)
    pub.add_argument("--reliable", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(publish(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
