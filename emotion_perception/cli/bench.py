"""`emotion-perception bench`: frames/s and latency of the landmark path on one core, naive vs optimised.

Also the CNN path: one face's latency (batch 1) and faces/s at batch 64, on the CPU unless told.

Frames: 640x480 BGR, one face (NASA's public-domain astronaut photo) moving smoothly a few pixels a frame.
- naive: HOG detection on every frame + 68 landmarks + scikit-learn `predict_proba` of a forest of the
  shipped model's shape (same feature set, trees, max_features) trained in-process on jittered landmarks;
- optimised: `tracking.FaceTracker` (detection every N frames, optionally on a downscaled frame,
  correlation tracker between) + the shipped model through `FlatForest`.
Each benchmark is a function in BENCHMARKS returning a dict of figures; the JSON output merges them.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotion_perception import features
from emotion_perception.cli.common import write_json
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.params import FRAME_STEP_PARAMS, defaults, validate
from emotion_perception.core.pipeline import Face, FaceAnalyzer, classify_faces
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.models.landmark_model import EmotionModel

WIDTH, HEIGHT = 640, 480


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="frames/s and latency, naive vs optimised, one core")
    parser.add_argument("--frames", type=int, default=300, help="frames per pipeline (default 300)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--face-scale", type=float, default=2.0,
                        help="size of the face relative to the astronaut photo's (~90 px); default 2.0 (~180 px)")
    node = defaults(FRAME_STEP_PARAMS)  # "optimised" is landmark_emotion_node at its defaults unless told
    parser.add_argument("--detect-every", type=int, default=node["detect_every"],
                        help="optimised: detection sweep every N frames (default: the node's)")
    parser.add_argument("--detect-scale", type=float, default=node["detect_scale"],
                        help="optimised: detector image scale (default: the node's)")
    parser.add_argument("--detect-tiles", type=int, default=node["detect_tiles"],
                        help="optimised: strips per detection sweep, one per frame (default: the node's)")
    parser.add_argument("--track-every", type=int, default=node["track_every"],
                        help="optimised: correlation tracker every N frames, landmarks carry the box between "
                        "(default: the node's)")
    parser.add_argument("--model", default=None, help="forest model (.npz); default: the shipped model")
    parser.add_argument("--cnn-model", default=None, help="CNN weights (.pt); default: the shipped small ResNet")
    parser.add_argument("--cnn-device", default="cpu", choices=("auto", "cpu", "cuda"),
                        help="where the CNN figures are measured (default cpu; one thread there)")
    parser.set_defaults(func=run)


@dataclass
class Context:
    """What every benchmark gets: the frames, the models and the settings."""

    frames: list[np.ndarray]
    n_frames: int
    model: EmotionModel
    predictor: LandmarkPredictor
    args: argparse.Namespace
    shared: dict[str, Any] = field(default_factory=dict)


def one_core() -> str:
    """Pin this process to one CPU and every thread pool to one thread; says what was done."""
    cv2.setNumThreads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}, 1 thread"
    return "1 thread (CPU affinity not available on this system)"


def moving_face_frames(face_scale: float, period: int = 60) -> list[np.ndarray]:
    """One period of a smooth back-and-forth path of the astronaut's head over a textured background."""
    import skimage.data

    head = skimage.data.astronaut()[30:250, 120:320, ::-1]
    head = cv2.resize(head, None, fx=face_scale, fy=face_scale, interpolation=cv2.INTER_LINEAR)
    h, w = head.shape[:2]
    if h > HEIGHT or w > WIDTH - 40:
        raise ValueError(f"face scale {face_scale} too large for a {WIDTH}x{HEIGHT} frame")
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 190, (HEIGHT, WIDTH, 3), dtype=np.uint8), (0, 0), 3)
    frames = []
    for i in range(period):
        phase = 2 * np.pi * i / period
        x = round((WIDTH - w) / 2 + (WIDTH - w) / 2 * 0.8 * np.sin(phase))
        y = round((HEIGHT - h) / 2 + (HEIGHT - h) / 2 * 0.5 * np.sin(2 * phase))
        frame = background.copy()
        frame[y : y + h, x : x + w] = head
        frames.append(frame)
    return frames


def _timed_loop(ctx: Context, step: Callable[[np.ndarray], int]) -> dict[str, float]:
    """Run `step` (frame -> faces found) over the frames; fps, latency percentiles and the hit rate."""
    times, found = np.empty(ctx.n_frames), 0
    start = time.perf_counter()
    for i in range(ctx.n_frames):
        t0 = time.perf_counter()
        found += step(ctx.frames[i % len(ctx.frames)]) > 0
        times[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    ms = times * 1000
    return {"fps": ctx.n_frames / total, "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)), "face_rate": found / ctx.n_frames}


def _face_rows(model: EmotionModel, landmarks: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """Feature rows the model scores for faces of one frame: each face, then (mirror models) its mirror."""
    grays = [gray] * len(landmarks)
    rows = features.compute(model.feature_set, landmarks, grays)
    if model.mirror:
        rows = np.vstack([rows, features.compute_mirrored(model.feature_set, landmarks, grays)])
    return rows


def _sklearn_forest(ctx: Context):
    """A scikit-learn forest shaped like the shipped model (feature set, trees, max_features, training rows),
    trained here on jittered astronaut landmarks: the baseline the flat forest is compared with."""
    from sklearn.ensemble import RandomForestClassifier

    if "sklearn" in ctx.shared:
        return ctx.shared["sklearn"]
    gray = cv2.cvtColor(ctx.frames[0], cv2.COLOR_BGR2GRAY)
    faces = FaceAnalyzer(FaceDetector(whole_image_fallback=False), ctx.predictor).analyze(gray)
    if not faces:
        raise ValueError("no face found in the benchmark frame")
    rng = np.random.default_rng(0)
    n = int(ctx.model.header.get("n_train", 1000))
    base = faces[0].landmarks.astype(np.float64)
    jitter = base[None] + rng.normal(0, 0.02 * np.ptp(base[:, 0]), (n, 68, 2))
    x = features.compute(ctx.model.feature_set, jitter, [gray] * n)
    y = rng.choice(ctx.model.labels, n)
    forest = RandomForestClassifier(
        n_estimators=ctx.model.forest.n_trees, max_features=ctx.model.header.get("max_features", "sqrt"),
        random_state=0, n_jobs=1,
    ).fit(x, y)
    ctx.shared["sklearn"] = forest
    return forest


def _sklearn_proba(forest, model: EmotionModel, rows: np.ndarray) -> np.ndarray:
    """Probabilities as EmotionModel computes them (mirror-averaged), through scikit-learn."""
    proba = forest.predict_proba(rows)
    if not model.mirror:
        return proba
    half = len(rows) // 2
    return (proba[:half] + proba[half:]) / 2


def bench_naive(ctx: Context) -> dict[str, Any]:
    """Detect on every frame + landmarks + scikit-learn predict_proba (the baseline)."""
    forest = _sklearn_forest(ctx)
    analyzer = FaceAnalyzer(FaceDetector(whole_image_fallback=False), ctx.predictor)

    def step(frame: np.ndarray) -> int:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        faces = analyzer.analyze(gray)
        if faces:
            _sklearn_proba(forest, ctx.model, _face_rows(ctx.model, np.stack([f.landmarks for f in faces]), gray))
        return len(faces)

    r = _timed_loop(ctx, step)
    return {"fps_naive": r["fps"], "latency_ms_p50_naive": r["p50"], "latency_ms_p99_naive": r["p99"],
            "face_rate_naive": r["face_rate"]}


def bench_optimised(ctx: Context) -> dict[str, Any]:
    """FaceTracker (detection every N frames on a downscaled frame, tracking between) + FlatForest."""
    tracker = FaceTracker(FaceDetector(whole_image_fallback=False), ctx.predictor,
                          detect_every=ctx.args.detect_every, detect_scale=ctx.args.detect_scale,
                          track_every=ctx.args.track_every, detect_tiles=ctx.args.detect_tiles)
    gray = np.empty((HEIGHT, WIDTH), np.uint8)

    def step(frame: np.ndarray) -> int:
        cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=gray)
        tracked = tracker.update(gray)
        classify_faces(ctx.model, [Face(t.box, t.landmarks) for t in tracked], gray)
        return len(tracked)

    r = _timed_loop(ctx, step)
    return {"fps_optimised": r["fps"], "latency_ms_p50": r["p50"], "latency_ms_p99": r["p99"],
            "face_rate_optimised": r["face_rate"], "detections_optimised": tracker.detections,
            "tracks_lost_optimised": tracker.lost}


def bench_forest(ctx: Context, repeats: int = 300) -> dict[str, Any]:
    """Per-face times: feature extraction, the shipped FlatForest vs scikit-learn on the same rows, and the
    whole classification (features + forest) as the node runs it."""
    forest = _sklearn_forest(ctx)
    gray = cv2.cvtColor(ctx.frames[0], cv2.COLOR_BGR2GRAY)
    landmarks = FaceAnalyzer(FaceDetector(whole_image_fallback=False), ctx.predictor).analyze(gray)[0].landmarks
    face = landmarks[None].astype(np.float64)
    rows = _face_rows(ctx.model, face, gray)

    def per_call(function: Callable[[], Any]) -> float:
        function()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            function()
            times.append(time.perf_counter() - t0)
        return float(np.percentile(times, 50) * 1000)

    return {
        "features_ms_p50": per_call(lambda: _face_rows(ctx.model, face, gray)),
        "forest_ms_p50": per_call(lambda: ctx.model.predict_features(*np.split(rows, 2))
                                  if ctx.model.mirror else ctx.model.predict_features(rows)),
        "sklearn_forest_ms_p50": per_call(lambda: _sklearn_proba(forest, ctx.model, rows)),
        "classify_ms_p50": per_call(lambda: ctx.model.predict_landmarks(face, [gray])),
    }


def run(args: argparse.Namespace) -> int:
    from emotion_perception.core.errors import CommandError

    if args.frames < 10:
        raise CommandError("--frames must be at least 10")
    problems = validate(FRAME_STEP_PARAMS, {"detect_every": args.detect_every, "detect_scale": args.detect_scale,
                                               "detect_tiles": args.detect_tiles, "track_every": args.track_every})
    if problems:
        raise CommandError("; ".join(problems))
    try:
        frames = moving_face_frames(args.face_scale)
    except ValueError as error:
        raise CommandError(str(error)) from None
    cores = one_core()
    ctx = Context(frames, args.frames, EmotionModel.load(args.model), LandmarkPredictor(), args)
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for bench in BENCHMARKS:
        results.update(bench(ctx))
    load_after = os.getloadavg()
    results.update(
        speedup_fps=results["fps_optimised"] / results["fps_naive"],
        speedup_forest=results["sklearn_forest_ms_p50"] / results["forest_ms_p50"],
        frames=args.frames, frame_size=[WIDTH, HEIGHT], face_px=round(90 * args.face_scale),
        detect_every=args.detect_every, detect_scale=args.detect_scale, track_every=args.track_every,
        detect_tiles=args.detect_tiles, cpu=cores,
        loadavg_1min_before=load_before[0], loadavg_1min_after=load_after[0], cpu_count=os.cpu_count(),
        model=ctx.model.name,
    )
    print_table(results)
    if args.json:
        write_json(args.json, results)
    return 0


def print_table(r: dict[str, Any]) -> None:
    print(f"emotion-perception bench: {r['frames']} frames {WIDTH}x{HEIGHT}, one face (~{r['face_px']} px), "
          f"{r['cpu']}; load average {r['loadavg_1min_before']:.2f} -> {r['loadavg_1min_after']:.2f} "
          f"on {r['cpu_count']} CPUs")
    print(f"{'pipeline':<44}{'fps':>8}{'p50 ms':>9}{'p99 ms':>9}{'face %':>8}")
    rows = (
        ("naive (detect every frame + sklearn)", "naive", "_naive"),
        (f"optimised (detect 1/{r['detect_every']} x{r['detect_scale']} in {r['detect_tiles']}+1, "
         f"track 1/{r['track_every']})",
         "optimised", ""),
    )
    for title, key, suffix in rows:
        print(f"{title:<44}{r['fps_' + key]:>8.1f}{r['latency_ms_p50' + suffix]:>9.2f}"
              f"{r['latency_ms_p99' + suffix]:>9.2f}{100 * r['face_rate_' + key]:>8.1f}")
    print(f"forest per face ({r['model']}, face + mirror rows): scikit-learn {r['sklearn_forest_ms_p50']:.3f} ms, "
          f"flat {r['forest_ms_p50']:.3f} ms (x{r['speedup_forest']:.1f}); features {r['features_ms_p50']:.3f} ms, "
          f"whole classification {r['classify_ms_p50']:.3f} ms")
    print(f"speed-up optimised / naive: x{r['speedup_fps']:.2f}")
    print(f"CNN ({r['cnn_arch']} {r['cnn_input_size']}px on {r['cnn_device']}, {r['cnn_threads']} thread(s)): "
          f"batch 1 {r['cnn_ms_p50']:.2f} ms per face (p90 {r['cnn_ms_p90']:.2f}), batch 64 "
          f"{r['cnn_faces_per_s_batch64']:.0f} faces/s")
    if r.get("rule_ms_p50") is not None:
        print(f"explanation rule per face (named measurements + fired rule): {r['rule_ms_p50']:.3f} ms, "
              f"of which the rule itself {r['rule_only_ms_p50']:.4f} ms")


def bench_rules(ctx: Context, repeats: int = 300) -> dict[str, Any]:
    """Per-face time of the landmark node's `explain` option: named measurements + the fired rule of the label,
    and the rule evaluation alone (None when the shipped rules do not explain the benchmarked model)."""
    from emotion_perception.features.named import named_measurements
    from emotion_perception.models.rules import RuleSet, named_rules_for_faces

    rules = RuleSet.load()
    if rules.mismatch(ctx.model.name):
        return {"rule_ms_p50": None, "rule_only_ms_p50": None}
    gray = cv2.cvtColor(ctx.frames[0], cv2.COLOR_BGR2GRAY)
    landmarks = FaceAnalyzer(FaceDetector(whole_image_fallback=False), ctx.predictor).analyze(gray)[0].landmarks
    label = ctx.model.labels[int(ctx.model.predict_landmarks(landmarks, [gray])[0].argmax())]
    values = named_measurements(landmarks)[1][0]

    def p50_ms(function: Callable[[], Any]) -> float:
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            function()
            times.append(time.perf_counter() - t0)
        return float(np.percentile(times[1:], 50) * 1000)

    return {"rule_ms_p50": p50_ms(lambda: named_rules_for_faces(rules, [landmarks], [label])),
            "rule_only_ms_p50": p50_ms(lambda: rules.fired(values, label))}


def bench_cnn_path(ctx: Context) -> dict[str, Any]:
    """The CNN path (resnet_emotion_node's classifier): batch-1 latency and batch-64 faces/s on --cnn-device."""
    from emotion_perception.cli.cnn_commands import bench_cnn, resolve_device_line

    return bench_cnn(ctx.args.cnn_model, resolve_device_line(ctx.args.cnn_device))


BENCHMARKS: list[Callable[[Context], dict[str, Any]]] = [
    bench_forest, bench_naive, bench_optimised, bench_rules, bench_cnn_path,
]
