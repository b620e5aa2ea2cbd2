"""`emotion-perception train forest ...`: train a landmark forest on dataset folders and save it safely."""

from __future__ import annotations

import argparse
import datetime
import platform

import numpy as np
import sklearn

from emotion_perception.cli.cnn_commands import add_cnn_train_parser
from emotion_perception.cli.common import (
    add_analyzer_args,
    add_balance_arg,
    add_data_args,
    add_screen_args,
    make_analyzer,
    make_cache,
    output_file,
    screening_of,
)
from emotion_perception.core.errors import CommandError
from emotion_perception.data.datasets import load_datasets
from emotion_perception.data.face_data import occluded_rows, with_landmarks
from emotion_perception.experiments.crossval import ForestRecipe
from emotion_perception.features import DEFAULT_FEATURE_SET
from emotion_perception.features.sets import FEATURE_SETS
from emotion_perception.models.landmark_model import DEFAULT_MAX_FEATURES, ForestSettings

DEFAULT_FOREST = ForestSettings()


def add_forest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--feature-set", default=DEFAULT_FEATURE_SET, choices=sorted(FEATURE_SETS))
    parser.add_argument("--n-estimators", type=int, default=100, help="trees (default 100, as the paper)")
    parser.add_argument(
        "--max-features", type=max_features_arg, default=DEFAULT_MAX_FEATURES,
        help="features tried per split: a fraction (0-1], 'sqrt' or 'log2'",
    )
    parser.add_argument("--no-mirror", action="store_true", help="no left-right mirror augmentation")
    parser.add_argument("--bag-size", type=int, default=DEFAULT_FOREST.bag_size,
                        help=f"rows each tree draws when balancing (default {DEFAULT_FOREST.bag_size})")
    parser.add_argument("--no-covered", action="store_true",
                        help="no covered-face forest (for faces whose lower part is covered; docs/robustness.md)")
    parser.add_argument("--covered-estimators", type=int, default=DEFAULT_FOREST.covered_estimators,
                        help=f"trees of the covered-face forest (default {DEFAULT_FOREST.covered_estimators})")
    parser.add_argument("--seed", type=int, default=0)


def max_features_arg(text: str) -> float | str:
    if text in ("sqrt", "log2"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, 'sqrt' or 'log2', got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"fraction must be in (0, 1], got {value}")
    return value


def forest_settings(args: argparse.Namespace) -> ForestSettings:
    """The forest options; trained with `args.threads` threads (the same trees for any number)."""
    settings = ForestSettings(args.feature_set, args.n_estimators, args.max_features, not args.no_mirror,
                              args.threads or DEFAULT_FOREST.n_jobs, args.balance or DEFAULT_FOREST.balance,
                              args.bag_size, not args.no_covered, args.covered_estimators)
    try:
        settings.check()
    except ValueError as error:
        raise CommandError(str(error)) from None
    return settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (forest, or cnn) on dataset folders")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    forest = kinds.add_parser("forest", help="landmark RandomForest (the default kind)")
    add_data_args(forest)
    add_analyzer_args(forest)
    add_forest_args(forest)
    add_balance_arg(forest)
    add_screen_args(forest, repairs=True)
    forest.add_argument("--threads", type=int, default=DEFAULT_FOREST.n_jobs,
                        help=f"CPU threads for training (default {DEFAULT_FOREST.n_jobs})")
    forest.add_argument("--name", default=None, help="model name stored in the file")
    forest.add_argument("--out", required=True, type=output_file, help="output model file (.npz)")
    forest.set_defaults(func=run_forest)
    add_cnn_train_parser(kinds)
    visibility = kinds.add_parser("visibility", help="the visibility and tamper checks (covered face regions, "
                                  "pixel artefacts) on clean faces and synthetic occluders")
    add_data_args(visibility)
    add_analyzer_args(visibility)
    visibility.add_argument("--false-positive-rate", type=float, default=0.005,
                            help="share of held-out clean faces each region check (upper, lower) may flag "
                                 "(default 0.005)")
    visibility.add_argument("--noise-false-positive-rate", type=float, default=0.001,
                            help="share of held-out clean faces the impulse-noise check may flag (default 0.001)")
    visibility.add_argument("--seed", type=int, default=0)
    visibility.add_argument("--out", required=True, type=output_file, help="output model file (.npz)")
    visibility.set_defaults(func=run_visibility)


def run_forest(args: argparse.Namespace) -> int:
    if not args.out.endswith(".npz"):
        raise CommandError(f"--out must end in .npz, got {args.out}")
    settings = forest_settings(args)
    analyzer, cache = make_analyzer(args), make_cache(args)
    data = with_landmarks(load_datasets(args.data), analyzer, cache, not args.quiet)
    screening, left_out = screening_of(args, data, repairs=True)
    found = data.extracted.found & ~left_out
    if not found.any():
        raise CommandError("no face found in any training image")
    labels = data.dataset.labels.astype(str)
    classes, counts = np.unique(labels[found], return_counts=True)
    header = {
        "name": args.name or f"forest-{settings.feature_set}",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "recipe": args.command_line,
        "data": args.data,
        "train_counts": dict(zip(classes.tolist(), counts.tolist())),
        "faces_not_found": int((~data.extracted.found).sum()),
        "screened_out": int(left_out.sum()),
        "screening": screening.counts() if screening else None,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }
    occluded = occluded_rows(data, settings.feature_set, settings.mirror, analyzer, cache, args.seed,
                             not args.quiet) if settings.covered else []
    recipe = ForestRecipe(settings, data, occluded, screening, scores=False)
    model = recipe.fit(np.flatnonzero(found), labels, [], data.dataset.groups(), args.seed, header)
    model.save(args.out)
    print(f"saved {args.out}: {model.forest.n_trees} trees, depth {model.forest.depth}, "
          f"{int(found.sum())} faces, classes {', '.join(model.labels)}")
    return 0


def run_visibility(args: argparse.Namespace) -> int:
    from emotion_perception.experiments.visibility import fit_visibility

    if not args.out.endswith(".npz"):
        raise CommandError(f"--out must end in .npz, got {args.out}")
    for option in ("false_positive_rate", "noise_false_positive_rate"):
        if not 0 < getattr(args, option) < 0.5:
            raise CommandError(f"--{option.replace('_', '-')} must be in (0, 0.5), got {getattr(args, option)}")
    analyzer, cache = make_analyzer(args), make_cache(args)
    data = [with_landmarks(load_datasets([spec]), analyzer, cache, not args.quiet) for spec in args.data]
    header = {"name": "visibility", "recipe": args.command_line, "data": args.data,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "sklearn": sklearn.__version__}
    model = fit_visibility(data, args.false_positive_rate, args.noise_false_positive_rate, seed=args.seed,
                           header=header, analyzer=analyzer, cache=cache)
    model.save(args.out)
    thresholds = ", ".join(f"{k} {v:.3f}" for k, v in {**model.thresholds,
                                                         **model.header["artefact_thresholds"]}.items())
    print(f"saved {args.out}: {model.header['n_train_examples']} training examples, thresholds {thresholds}")
    return 0
