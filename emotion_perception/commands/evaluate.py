"""`emotion-perception evaluate`: cross-validate fresh forests (or score a saved model) on dataset folders."""

from __future__ import annotations

import argparse

import numpy as np

from emotion_perception.classifier import EmotionModel
from emotion_perception.cli import CommandError
from emotion_perception.commands.common import (
    add_analyzer_args,
    add_data_args,
    make_analyzer,
    make_cache,
    write_json,
)
from emotion_perception.commands.train import add_forest_args, forest_settings
from emotion_perception.datasets import concat
from emotion_perception.evaluation import PROTOCOLS, metrics, plot_confusion
from emotion_perception.experiments import cross_validate, load_datasets, predict_all, with_landmarks


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="measure accuracy under a protocol (JSON + confusion plot)")
    add_data_args(parser)
    parser.add_argument("--test-data", action="append", default=None, metavar="DIR[:LABELS]",
                        help="test folders for --protocol cross (train on --data, test on these)")
    parser.add_argument("--protocol", default="subject-kfold", choices=PROTOCOLS)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="reshuffled repeats for mean and 95%% CI")
    parser.add_argument("--model", default=None, help="score this saved model instead of training per fold")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the metrics as JSON")
    parser.add_argument("--plot", default=None, metavar="OUT.png", help="write the confusion matrix picture")
    add_analyzer_args(parser)
    add_forest_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.folds < 2 and args.protocol in ("subject-kfold", "paper"):
        raise CommandError(f"--folds must be >= 2, got {args.folds}")
    if args.repeats < 1:
        raise CommandError(f"--repeats must be >= 1, got {args.repeats}")
    if args.protocol == "cross" and not args.test_data and not args.model:
        raise CommandError("--protocol cross needs --test-data DIR")
    train = load_datasets(args.data)
    test = load_datasets(args.test_data) if args.test_data else None
    dataset = concat([train, test]) if test is not None else train
    data = with_landmarks(dataset, make_analyzer(args), make_cache(args), not args.quiet)
    test_mask = np.arange(len(dataset)) >= len(train) if test is not None else None
    if args.model:
        model = EmotionModel.load(args.model)
        index = np.flatnonzero(test_mask) if test_mask is not None else np.arange(len(dataset))
        known = np.isin(dataset.labels[index].astype(str), model.labels)
        if not known.any():
            raise CommandError(f"the model knows none of the labels of the data (it knows {model.labels})")
        unknown = sorted(set(dataset.labels[index[~known]].astype(str)))
        if unknown:
            print(f"scored on the {int(known.sum())} images of classes the model knows; left out "
                  f"{int((~known).sum())} of class(es) {', '.join(unknown)}")
        index = index[known]
        rows = data.feature_rows(model.feature_set, model.mirror)
        result = metrics(dataset.labels[index].astype(str), predict_all(model, data, rows, index), model.labels)
        result.update(protocol="saved-model", model=args.model, model_name=model.name,
                      left_out_unknown_labels=int((~known).sum()), unknown_labels=unknown)
    else:
        result = cross_validate(data, forest_settings(args), args.protocol, args.folds, args.repeats, args.seed,
                                test_mask, progress=not args.quiet)
    result.update(data=args.data, test_data=args.test_data, faces_found=float(data.extracted.found_fraction))
    print_summary(result)
    if args.json:
        write_json(args.json, result)
    if args.plot:
        title = f"{'+'.join(args.data)} - {result['protocol']} - accuracy {result['accuracy']:.3f}"
        plot_confusion(result["confusion"], result["labels"], args.plot, title)
    return 0


def print_summary(result: dict) -> None:
    line = f"{result['protocol']}: accuracy {result['accuracy']:.4f}"
    if result.get("repeats", 1) > 1:
        line += f" (mean {result['accuracy_mean']:.4f} ± {result['accuracy_ci95']:.4f} over {result['repeats']})"
    line += f", macro F1 {result['macro_f1']:.4f}, 3-class {result['accuracy_3class']:.4f}, n={result['n']}"
    print(line)
    recall = ", ".join(f"{k} {v:.2f}" for k, v in result["per_class_recall"].items() if v is not None)
    print(f"per-class recall: {recall}")
