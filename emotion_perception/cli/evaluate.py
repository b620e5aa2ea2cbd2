"""`emotion-perception evaluate`: cross-validate fresh models (forest or CNN) or score a saved one on dataset
folders; the same JSON keys for both model kinds."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from emotion_perception.cli.cnn_commands import add_cnn_args, evaluate_cnn
from emotion_perception.cli.common import (
    add_analyzer_args,
    add_data_args,
    make_analyzer,
    make_cache,
    write_json,
)
from emotion_perception.cli.train import add_forest_args, forest_settings
from emotion_perception.core.errors import CommandError
from emotion_perception.data.datasets import FaceDataset, concat
from emotion_perception.experiments.evaluation import (
    PROTOCOLS,
    known_label_index,
    metrics,
    plot_confusion,
    saved_model_index,
)
from emotion_perception.experiments.landmark_experiments import (
    cross_validate,
    load_datasets,
    predict_all,
    with_landmarks,
)
from emotion_perception.models.landmark_model import EmotionModel

MODEL_KINDS = ("forest", "cnn")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="measure accuracy under a protocol (JSON + confusion plot)")
    add_data_args(parser)
    parser.add_argument("--test-data", action="append", default=None, metavar="DIR[:LABELS]",
                        help="test folders for --protocol cross (train on --data, test on these)")
    parser.add_argument("--protocol", default="subject-kfold", choices=PROTOCOLS)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="reshuffled repeats for mean and 95%% CI")
    parser.add_argument("--model-kind", default=None, choices=MODEL_KINDS,
                        help="forest (default) or cnn; a --model ending in .pt means cnn")
    parser.add_argument("--model", default=None,
                        help="score this saved model (.npz forest, .pt CNN) instead of training per fold; under "
                        "--protocol split only the manifest's test rows are scored")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the metrics as JSON")
    parser.add_argument("--plot", default=None, metavar="OUT.png", help="write the confusion matrix picture")
    add_analyzer_args(parser)
    add_forest_args(parser)
    add_cnn_args(parser.add_argument_group("CNN options (--model-kind cnn)"))
    parser.set_defaults(func=run)


def model_kind(args: argparse.Namespace) -> str:
    """The kind asked for, or the one the --model file's suffix names; a contradiction is an error."""
    by_file = None if not args.model else ("cnn" if args.model.endswith(".pt") else "forest")
    if args.model_kind and by_file and args.model_kind != by_file:
        raise CommandError(f"--model-kind {args.model_kind} does not match the model file {args.model}")
    return args.model_kind or by_file or "forest"


def run(args: argparse.Namespace) -> int:
    if args.folds < 2 and args.protocol in ("subject-kfold", "paper"):
        raise CommandError(f"--folds must be >= 2, got {args.folds}")
    if args.repeats < 1:
        raise CommandError(f"--repeats must be >= 1, got {args.repeats}")
    if args.protocol == "cross" and not args.test_data:
        raise CommandError("--protocol cross needs --test-data DIR")
    kind = model_kind(args)
    train = load_datasets(args.data)
    test = load_datasets(args.test_data) if args.test_data else None
    dataset = concat([train, test]) if test is not None else train
    test_mask = np.arange(len(dataset)) >= len(train) if test is not None else None
    warn_image_level_groups(args.protocol, dataset)
    result = (evaluate_cnn(args, dataset, test_mask) if kind == "cnn"
              else evaluate_forest(args, dataset, test_mask))
    result.update(data=args.data, test_data=args.test_data, model_kind=kind,
                  image_level_groups=dataset.sources_without_subjects() if args.protocol == "subject-kfold" else [])
    print_summary(result)
    if args.json:
        write_json(args.json, result)
    if args.plot:
        title = f"{'+'.join(args.data)} - {kind} - {result['protocol']} - accuracy {result['accuracy']:.3f}"
        plot_confusion(result["confusion"], result["labels"], args.plot, title)
    return 0


def warn_image_level_groups(protocol: str, dataset: FaceDataset) -> None:
    """Say so when subject-kfold has to split some data image by image (no subject ids in its manifest)."""
    missing = dataset.sources_without_subjects() if protocol == "subject-kfold" else []
    if missing:
        print(f"note: {', '.join(missing)} has no subject ids: its images are split one by one, so a person may "
              "be on both sides of a fold", file=sys.stderr)


def evaluate_forest(args: argparse.Namespace, dataset: FaceDataset, test_mask: np.ndarray | None) -> dict:
    """Fresh forests per fold, or the saved forest --model on the rows its protocol scores."""
    data = with_landmarks(dataset, make_analyzer(args), make_cache(args), not args.quiet)
    if not args.model:
        result = cross_validate(data, forest_settings(args), args.protocol, args.folds, args.repeats, args.seed,
                                test_mask, progress=not args.quiet)
        result.update(faces_found=float(data.extracted.found_fraction))
        return result
    model = EmotionModel.load(args.model)
    labels = dataset.labels.astype(str)
    index, unknown = known_label_index(labels, saved_model_index(args.protocol, dataset, test_mask), model.labels)
    report_left_out(unknown)
    rows = data.feature_rows(model.feature_set, model.mirror)
    result = metrics(labels[index], predict_all(model, data, rows, index), model.labels)
    result.update(protocol="saved-model", scored_protocol=args.protocol, model=args.model, model_name=model.name,
                  unknown_labels=unknown, faces_found=float(data.extracted.found[index].mean()))
    return result


def report_left_out(unknown: list[str]) -> None:
    if unknown:
        print(f"note: the model does not know the class(es) {', '.join(unknown)}: their images are left out",
              file=sys.stderr)


def print_summary(result: dict) -> None:
    line = f"{result['protocol']}: accuracy {result['accuracy']:.4f}"
    if result.get("repeats", 1) > 1:
        line += f" (mean {result['accuracy_mean']:.4f} ± {result['accuracy_ci95']:.4f} over {result['repeats']})"
    line += f", macro F1 {result['macro_f1']:.4f}, 3-class {result['accuracy_3class']:.4f}, n={result['n']}"
    print(line)
    recall = ", ".join(f"{k} {v:.2f}" for k, v in result["per_class_recall"].items() if v is not None)
    print(f"per-class recall: {recall}")
