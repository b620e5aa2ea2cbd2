"""`emotion-perception evaluate`: cross-validate fresh models (forest or CNN) or score a saved one on dataset
folders; the same JSON keys for both model kinds."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from emotion_perception.cli.cnn_commands import add_cnn_args, cnn_settings, resolve_device_line
from emotion_perception.cli.common import (
    add_analyzer_args,
    add_balance_arg,
    add_data_args,
    add_executor_args,
    executor_settings,
    make_analyzer,
    make_cache,
    output_file,
    write_arrays,
    write_json,
)
from emotion_perception.cli.train import add_forest_args, forest_settings
from emotion_perception.core.errors import CommandError
from emotion_perception.core.types import Classifier
from emotion_perception.data.datasets import FaceDataset, concat, load_datasets
from emotion_perception.data.face_data import extract_crops, occluded_rows, with_landmarks
from emotion_perception.experiments.crossval import (
    CnnRecipe,
    ForestRecipe,
    Recipe,
    cross_validate,
    cross_validate_by_dataset,
    predict,
)
from emotion_perception.experiments.evaluation import (
    PROTOCOLS,
    known_label_index,
    metrics,
    plot_confusion,
    saved_model_index,
)
from emotion_perception.experiments.executor import available_cores
from emotion_perception.models.cnn_training import TrainSettings
from emotion_perception.models.landmark_model import ForestSettings
from emotion_perception.models.shipped import load_classifier
from emotion_perception.models.shipped import model_kind as kind_of_model

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
                        help="score this saved model (forest, cnn: the shipped ones; or a .npz forest, .pt CNN) "
                        "instead of training per fold; under --protocol split only the manifest's test rows are "
                        "scored")
    parser.add_argument("--json", default=None, metavar="OUT", type=output_file, help="write the metrics as JSON")
    parser.add_argument("--plot", default=None, metavar="OUT.png", type=output_file,
                        help="write the confusion matrix picture")
    parser.add_argument("--predictions", default=None, metavar="OUT.npz", type=output_file,
                        help="leave-dataset-out: write every held-out probability (8 emotions), true label and "
                        "dataset, for calibration and fusion")
    add_analyzer_args(parser)
    add_forest_args(parser)
    add_balance_arg(parser)
    add_cnn_args(parser.add_argument_group("CNN options (--model-kind cnn)"))
    add_executor_args(parser)
    parser.set_defaults(func=run)


def model_kind(args: argparse.Namespace) -> str:
    """The kind asked for, or the one the --model names; a contradiction is an error."""
    by_file = kind_of_model(args.model) if args.model else None
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
    executor = executor_settings(args)
    if args.threads is None:  # forest: the cores shared by the processes (the same trees for any number); CNN: 1,
        # since torch's CPU kernels may round differently with other thread counts
        shares = 1 if executor.cluster else executor.jobs or available_cores()
        args.threads = max(1, available_cores() // shares) if kind == "forest" else 1
    train = load_datasets(args.data)
    test = load_datasets(args.test_data) if args.test_data else None
    dataset = concat([train, test]) if test is not None else train
    test_mask = np.arange(len(dataset)) >= len(train) if test is not None else None
    warn_image_level_groups(args.protocol, dataset)
    if args.model:
        result = evaluate_saved(args, kind, dataset, test_mask)
    elif args.protocol == "leave-dataset-out":
        if args.repeats != 1:
            raise CommandError("leave-dataset-out has fixed folds (one per dataset): use --repeats 1")
        recipe = make_recipe(args, kind, dataset)
        result, held_out = cross_validate_by_dataset(recipe, dataset, args.seed, progress=not args.quiet)
        result.update(faces_found=float(recipe.found.mean()))
        if args.predictions:
            write_arrays(args.predictions, held_out)
    else:
        recipe = make_recipe(args, kind, dataset)
        result = cross_validate(recipe, dataset, args.protocol, args.folds, args.repeats, args.seed, test_mask,
                                progress=not args.quiet, executor=executor, threads=args.threads)
        result.update(faces_found=float(recipe.found.mean()))
    result.update(data=args.data, test_data=args.test_data, model_kind=kind,
                  image_level_groups=dataset.sources_without_subjects() if args.protocol == "subject-kfold" else [])
    print_summary(result)
    if args.json:
        write_json(args.json, result)
    if args.plot:
        title = f"{'+'.join(args.data)} - {kind} - {result['protocol']} - accuracy {result['accuracy']:.3f}"
        plot_confusion(result["confusion"], result["labels"], args.plot, title)
    return 0


def make_recipe(args: argparse.Namespace, kind: str, dataset: FaceDataset, model: Classifier | None = None) -> Recipe:
    """What fresh models of `kind` (or the saved `model`) read of `dataset`, computed now; fresh models need at
    least one face to train on."""
    analyzer = make_analyzer(args)
    recipe: Recipe
    if kind == "forest":
        settings = forest_settings(args) if model is None else ForestSettings.like(model)
        cache = make_cache(args)
        data = with_landmarks(dataset, analyzer, cache, not args.quiet)
        occluded = []
        if model is None and settings.covered:
            occluded = occluded_rows(data, settings.feature_set, settings.mirror, analyzer, cache, args.seed,
                                     not args.quiet)
        recipe = ForestRecipe(settings, data, occluded)
    else:
        if model is None:
            cnn = replace(cnn_settings(args), seed=args.seed)
        else:
            spec = model.crop
            cnn = replace(TrainSettings(), crop=spec.kind, input_size=spec.size, margin=spec.margin)
        crops = extract_crops(dataset, analyzer, cnn.crop_spec, make_cache(args), not args.quiet)
        recipe = CnnRecipe(cnn, crops, dataset)
    if model is None:
        if not recipe.found.any():
            raise CommandError(f"no face found in any of the {len(dataset)} images: nothing to train on")
        return FacesToTrainOn(recipe)
    return recipe


class FacesToTrainOn:
    """A recipe whose every training part must hold a face: a fold without one ends the command with one line
    instead of an error inside scikit-learn or torch."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe, self.found = recipe, recipe.found

    def fit(self, index: np.ndarray, labels: np.ndarray, classes: list[str], groups: np.ndarray, seed: int) -> Any:
        if not len(index):
            raise CommandError(f"a training part holds no face ({int(self.found.sum())} images with a face in all): "
                               "use fewer --folds or more images")
        return self.recipe.fit(index, labels, classes, groups, seed)

    def proba(self, model: Any, index: np.ndarray) -> np.ndarray:
        return self.recipe.proba(model, index)

    def describe(self) -> dict[str, Any]:
        return self.recipe.describe()


def evaluate_saved(args: argparse.Namespace, kind: str, dataset: FaceDataset, test_mask: np.ndarray | None) -> dict:
    """The saved model --model on the rows its protocol scores (the classes it knows)."""
    device = resolve_device_line(cnn_settings(args).device) if kind == "cnn" else "cpu"
    model = load_classifier(args.model, device)
    labels = dataset.labels.astype(str)
    index, unknown = known_label_index(labels, saved_model_index(args.protocol, dataset, test_mask), model.labels)
    if unknown:
        print(f"note: the model does not know the class(es) {', '.join(unknown)}: their images are left out",
              file=sys.stderr)
    recipe = make_recipe(args, kind, dataset.subset(np.isin(np.arange(len(dataset)), index)), model)
    rows = np.arange(len(index))
    result = metrics(labels[index], predict(recipe, model, rows), model.labels)
    result.update(protocol="saved-model", scored_protocol=args.protocol, model=args.model, model_name=model.name,
                  unknown_labels=unknown, faces_found=float(recipe.found.mean()))
    if kind == "cnn":
        result["arch"] = model.header["arch"]
    return result


def warn_image_level_groups(protocol: str, dataset: FaceDataset) -> None:
    """Say so when subject-kfold has to split some data image by image (no subject ids in its manifest)."""
    missing = dataset.sources_without_subjects() if protocol == "subject-kfold" else []
    if missing:
        print(f"note: {', '.join(missing)} has no subject ids: its images are split one by one, so a person may "
              "be on both sides of a fold", file=sys.stderr)


def print_summary(result: dict) -> None:
    line = f"{result['protocol']}: accuracy {result['accuracy']:.4f}" + (" (pooled)" if "per_dataset" in result else "")
    if result.get("repeats", 1) > 1:
        line += f" (mean {result['accuracy_mean']:.4f} ± {result['accuracy_ci95']:.4f} over {result['repeats']})"
    line += f", macro F1 {result['macro_f1']:.4f}, 3-class {result['accuracy_3class']:.4f}, n={result['n']}"
    print(line)
    recall = ", ".join(f"{k} {v:.2f}" for k, v in result["per_class_recall"].items() if v is not None)
    print(f"per-class recall: {recall}")
    for name, held_out in result.get("per_dataset", {}).items():
        print(f"held out {name}: accuracy {held_out['accuracy']:.4f}, macro F1 {held_out['macro_f1']:.4f}, "
              f"n={held_out['n']}, ECE {held_out['ece']:.3f} (calibrated {held_out['ece_calibrated']:.3f})")
    if "per_dataset" in result:
        print(f"mean over held-out datasets: {result['accuracy_mean']:.4f} (lowest {result['accuracy_min']:.4f}); "
              f"temperature fitted on every held-out prediction: {result['temperature']:.3f}")
