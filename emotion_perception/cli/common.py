"""Options and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception.core.atomic import atomic_path, check_writable, write_text_atomic
from emotion_perception.core.errors import CommandError, EmotionPerceptionError, OutputError
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.data.face_data import LandmarkData
from emotion_perception.data.landmark_cache import LandmarkCache
from emotion_perception.data.screening import Screening, screen
from emotion_perception.experiments.executor import ExecutorSettings, available_cores
from emotion_perception.models.balance import BALANCES
from emotion_perception.models.tamper import TamperCheck


def add_data_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--data", action="append", required=required, default=None, metavar="DIR[:LABELS][@SPLIT]",
        help="dataset folder (<class>/<image>, optional manifest.csv); repeat to mix; "
        "DIR:neutral,happy keeps only those classes, DIR@train only the manifest's train rows",
    )


def add_balance_arg(parser: argparse.ArgumentParser) -> None:
    """`--balance`, shared by both model kinds (each has its own default: the shipped recipe's)."""
    parser.add_argument("--balance", default=None, choices=BALANCES,
                        help="how training draws its examples: 'equal' every dataset and every class within it the "
                        "same share, 'sqrt' by the square roots of their sizes, 'none' as they come (default: "
                        "forest equal, CNN sqrt)")


def add_screen_args(parser: argparse.ArgumentParser, repairs: bool) -> None:
    """`--screen`: run the tamper check over the training images (Type A poisoning hygiene); `repairs`: faces with
    covered regions are kept with those regions' features replaced (forests), else left out (CNNs)."""
    what = ("leave out training faces the tamper check flags for pixel artefacts, keep those it finds covered "
            "(eyes or mouth) with the covered region's features taken from unflagged faces, and say how many"
            if repairs else "leave out training images whose face the tamper check flags (covered eyes or mouth, "
            "pixel artefacts) and say how many")
    parser.add_argument("--screen", action="store_true", help=what)
    parser.add_argument("--visibility-model", default=None, metavar="MODEL.npz",
                        help="the tamper check's model (default: the shipped one)")


SCREEN_CLASS_LIMIT = 0.5  # --screen refuses to train when it leaves out more than this share of one class's faces


def screening_of(args: argparse.Namespace, data: LandmarkData, repairs: bool) -> tuple[Screening | None, np.ndarray]:
    """`--screen`: the tamper check's verdicts on the training faces (None without it) and the images training
    leaves out (all flagged ones, or with `repairs` those with pixel artefacts), said in one line."""
    if not args.screen:
        return None, np.zeros(len(data.dataset), bool)
    try:
        check = TamperCheck.load(args.visibility_model)
    except EmotionPerceptionError as error:
        raise CommandError(f"--visibility-model: {error}") from None
    screening = screen(data, check, not args.quiet)
    left_out = screening.left_out(repairs)
    kept = f", {int(screening.repaired.sum())} kept with their covered regions' features replaced" if repairs else ""
    print(f"screening: {int(screening.flagged.sum())} of {int(data.extracted.found.sum())} training faces flagged, "
          f"{int(left_out.sum())} left out{kept}")
    labels, found = data.dataset.labels, data.extracted.found
    lost = {label: (int((left_out & (labels == label)).sum()), int((found & (labels == label)).sum()))
            for label in np.unique(labels)}
    tampered = [f"{label} {out} of {n}" for label, (out, n) in lost.items() if n and out > SCREEN_CLASS_LIMIT * n]
    if tampered:  # Type A: a class whose images mostly carry occluders would be learnt from what is left, or not
        raise CommandError(f"screening leaves out most training faces of a class ({', '.join(tampered)}): its "
                           "images look tampered with; not training")
    return screening, left_out


def add_analyzer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landmark-model", default=None, help="dlib 68-point .dat file (default: shipped)")
    parser.add_argument("--upsample", type=int, default=0, help="detector up-sampling steps (0-3)")
    parser.add_argument("--min-face", type=int, default=40, help="smallest face side in pixels as searched")
    parser.add_argument("--cache", default=None, type=output_file,
                        help="landmark cache file (default: ~/.cache/emotion_perception)")
    parser.add_argument("--no-cache", action="store_true", help="always run dlib, store nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    """`--jobs` and `--cluster`: where the independent units of work (trial cells, folds, bags) run."""
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="worker processes on this machine (default: one per available core, "
                        f"{available_cores()} here; 1: all in this process)")
    parser.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="run on this Dask cluster instead (its scheduler, e.g. tcp://head:8786); every worker "
                        "needs this package at the same version")


def executor_settings(args: argparse.Namespace) -> ExecutorSettings:
    settings = ExecutorSettings(args.jobs, args.cluster)
    try:
        settings.check()
    except EmotionPerceptionError as error:
        raise CommandError(str(error)) from None
    return settings


def output_file(text: str) -> str:
    """argparse type of an output file: refused while the arguments are read when it cannot be written, so that a
    command never runs its work to fail at the end."""
    try:
        check_writable(text)
    except OutputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def output_folder(text: str) -> str:
    """argparse type of an output folder (see `output_file`)."""
    try:
        check_writable(text, folder=True)
    except OutputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def make_analyzer(args: argparse.Namespace) -> FaceAnalyzer:
    return FaceAnalyzer(FaceDetector(args.upsample, args.min_face), LandmarkPredictor(args.landmark_model))


def make_cache(args: argparse.Namespace) -> LandmarkCache | None:
    return None if args.no_cache else LandmarkCache(args.cache)


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically: a crash never leaves a half-written file at `path`."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write numeric and text arrays as an .npz (no pickled objects), atomically."""
    with atomic_path(path) as partial, partial.open("wb") as handle:
        np.savez_compressed(handle, **{k: np.asarray(v) for k, v in arrays.items()})
