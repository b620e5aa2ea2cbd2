"""The benchmark behind `emotion-perception bench`: frames/s and latency of the landmark path on one core, naive
vs optimised, per-face times of the features, the forest and the explanation rules, and the CNN path.

Frames: 640x480 BGR, one face (NASA's public-domain astronaut photo) moving smoothly a few pixels a frame.
- naive: HOG detection on every frame + 68 landmarks + scikit-learn `predict_proba` of a forest of the
  shipped model's shape (same feature set, trees, max_features) trained in-process on jittered landmarks;
- optimised: the landmark node's own per-frame step (`pipeline.classify_camera_frame`): `tracking.FaceTracker`
  (detection every N frames, optionally on a downscaled frame, correlation tracker between), the tamper check
  (on at the node's defaults) and the shipped model through `FlatForest`.
Each benchmark is a function in BENCHMARKS returning a dict of figures; `run_bench` merges them. Speed is
compared within one run (ratios), never asserted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from emotion_perception import features
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.pipeline import FaceAnalyzer, classify_camera_frame
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Face
from emotion_perception.models.cnn import CnnClassifier, default_cnn_path
from emotion_perception.models.landmark_model import EmotionModel
from emotion_perception.models.tamper import TamperCheck

WIDTH, HEIGHT = 640, 480


@dataclass
class BenchSettings:
    """What is benchmarked: frames, face size, the optimised pipeline's tracker settings, the models."""

    frames: int
    face_scale: float
    detect_every: int
    detect_scale: float
    detect_tiles: int
    track_every: int
    model: str | None = None
    cnn_model: str | None = None
    cnn_device: str = "cpu"


@dataclass
class Context:
    """What every benchmark gets: the frames, the models and the settings."""

    frames: list[np.ndarray]
    n_frames: int
    model: EmotionModel
    predictor: LandmarkPredictor
    settings: BenchSettings
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
    gray, face = _first_face(ctx)
    rng = np.random.default_rng(0)
    n = int(ctx.model.header.get("n_train", 1000))
    base = face.landmarks.astype(np.float64)
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
    """The landmark node's per-frame step: FaceTracker (detection every N frames on a downscaled frame, tracking
    between), the tamper check of each face, FlatForest."""
    tracker = FaceTracker(FaceDetector(whole_image_fallback=False), ctx.predictor,
                          detect_every=ctx.settings.detect_every, detect_scale=ctx.settings.detect_scale,
                          track_every=ctx.settings.track_every, detect_tiles=ctx.settings.detect_tiles)
    check = TamperCheck.load()
    gray = np.empty((HEIGHT, WIDTH), np.uint8)

    def step(frame: np.ndarray) -> int:
        cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=gray)
        return len(classify_camera_frame(tracker, ctx.model, gray, WIDTH, check).ids)

    r = _timed_loop(ctx, step)
    return {"fps_optimised": r["fps"], "latency_ms_p50": r["p50"], "latency_ms_p99": r["p99"],
            "face_rate_optimised": r["face_rate"], "detections_optimised": tracker.detections,
            "tracks_lost_optimised": tracker.lost}


def bench_forest(ctx: Context, repeats: int = 300) -> dict[str, Any]:
    """Per-face times: feature extraction, the shipped FlatForest vs scikit-learn on the same rows, and the
    whole classification as the node runs it: with `check_tampering` off, features + forest and the visibility
    check that picks the covered-face forest where the model has one; on, the same without that check (the
    regions come from the tamper check, timed in `bench_tamper`)."""
    forest = _sklearn_forest(ctx)
    gray, found = _first_face(ctx)
    face = found.landmarks[None].astype(np.float64)
    rows = _face_rows(ctx.model, face, gray)
    return {
        "features_ms_p50": _p50_ms(lambda: _face_rows(ctx.model, face, gray), repeats),
        "forest_ms_p50": _p50_ms(lambda: ctx.model.predict_features(*np.split(rows, 2))
                                 if ctx.model.mirror else ctx.model.predict_features(rows), repeats),
        "sklearn_forest_ms_p50": _p50_ms(lambda: _sklearn_proba(forest, ctx.model, rows), repeats),
        "classify_ms_p50": _p50_ms(lambda: ctx.model.predict_proba(gray, [found]), repeats),
        "classify_checked_ms_p50": _p50_ms(lambda: ctx.model.predict_proba(gray, [found], [[]]), repeats),
    }


def bench_cnn(model: str | None = None, device: str = "cpu", repeats: int = 200) -> dict[str, object]:
    """CNN speed on random crops: median/p90 latency of one face (batch 1) and faces/s at batch 64."""
    classifier = CnnClassifier.load(model or default_cnn_path(), device)
    size = classifier.input_size
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, size, size), dtype=np.uint8)
    batch = rng.integers(0, 256, (64, size, size), dtype=np.uint8)
    for _ in range(10):
        classifier.predict_crops(one)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.predict_crops(one)
        times.append(time.perf_counter() - started)
    classifier.predict_crops(batch)
    batches = max(repeats // 20, 3)
    started = time.perf_counter()
    for _ in range(batches):
        classifier.predict_crops(batch)
    seconds = time.perf_counter() - started
    return {
        "cnn_ms_p50": round(1000 * float(np.percentile(times, 50)), 3),
        "cnn_ms_p90": round(1000 * float(np.percentile(times, 90)), 3),
        "cnn_faces_per_s_batch64": round(64 * batches / seconds, 1),
        "cnn_arch": classifier.header["arch"], "cnn_input_size": size, "cnn_device": str(classifier.device),
        "cnn_threads": torch.get_num_threads(),
    }


def bench_rules(ctx: Context, repeats: int = 300) -> dict[str, Any]:
    """Per-face time of the landmark node's `explain` option: named measurements + the fired rule of the label,
    and the rule evaluation alone (None when the shipped rules do not explain the benchmarked model)."""
    from emotion_perception.features.named import named_measurements
    from emotion_perception.models.rules import RuleSet, named_rules_for_faces

    rules = RuleSet.load()
    if rules.mismatch(ctx.model.name):
        return {"rule_ms_p50": None, "rule_only_ms_p50": None}
    gray, face = _first_face(ctx)
    landmarks = face.landmarks
    label = ctx.model.labels[int(ctx.model.predict_landmarks(landmarks, [gray])[0].argmax())]
    values = named_measurements(landmarks)[1][0]
    return {"rule_ms_p50": _p50_ms(lambda: named_rules_for_faces(rules, [landmarks], [label]), repeats),
            "rule_only_ms_p50": _p50_ms(lambda: rules.fired(values, label), repeats)}


def bench_tamper(ctx: Context, repeats: int = 300) -> dict[str, Any]:
    """Per-face time of the classifier nodes' tamper check (check_tampering): the whole check, and the visibility
    estimate alone (aligned crop, region statistics, visibility forest)."""
    check = TamperCheck.load()
    gray, face = _first_face(ctx)
    faces = [face]
    return {"tamper_ms_p50": _p50_ms(lambda: check.assess(gray, faces), repeats),
            "visibility_ms_p50": _p50_ms(lambda: check.visibility.assess(gray, faces), repeats)}


def _first_face(ctx: Context) -> tuple[np.ndarray, Face]:
    """The first benchmark frame in grey and its face (found once, kept in `ctx.shared`)."""
    if "face" not in ctx.shared:
        gray = cv2.cvtColor(ctx.frames[0], cv2.COLOR_BGR2GRAY)
        faces = FaceAnalyzer(FaceDetector(whole_image_fallback=False), ctx.predictor).analyze(gray)
        if not faces:
            raise ValueError("no face found in the benchmark frame")
        ctx.shared["face"] = gray, faces[0]
    return ctx.shared["face"]


def _p50_ms(function: Callable[[], Any], repeats: int) -> float:
    """Median milliseconds of `repeats` calls, after one warm-up call."""
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times[1:], 50) * 1000)


def bench_cnn_path(ctx: Context) -> dict[str, Any]:
    """The CNN path (resnet_emotion_node's classifier): batch-1 latency and batch-64 faces/s on --cnn-device."""
    return bench_cnn(ctx.settings.cnn_model, ctx.settings.cnn_device)


BENCHMARKS: list[Callable[[Context], dict[str, Any]]] = [
    bench_forest, bench_naive, bench_optimised, bench_rules, bench_tamper, bench_cnn_path,
]


def run_bench(settings: BenchSettings) -> dict[str, Any]:
    """Every benchmark on one core, with the settings and the machine's load in the results."""
    frames = moving_face_frames(settings.face_scale)
    cores = one_core()
    ctx = Context(frames, settings.frames, EmotionModel.load(settings.model), LandmarkPredictor(), settings)
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for bench in BENCHMARKS:
        results.update(bench(ctx))
    load_after = os.getloadavg()
    results.update(
        speedup_fps=results["fps_optimised"] / results["fps_naive"],
        speedup_forest=results["sklearn_forest_ms_p50"] / results["forest_ms_p50"],
        frames=settings.frames, frame_size=[WIDTH, HEIGHT], face_px=round(90 * settings.face_scale),
        detect_every=settings.detect_every, detect_scale=settings.detect_scale, track_every=settings.track_every,
        detect_tiles=settings.detect_tiles, cpu=cores,
        loadavg_1min_before=load_before[0], loadavg_1min_after=load_after[0], cpu_count=os.cpu_count(),
        model=ctx.model.name,
    )
    return results
