"""One cross-validation loop for every model kind. A recipe holds what its model reads of a dataset, computed
once (the forest: landmark feature rows; the CNN: face crops), trains a fresh model on any rows and scores
rows; `cross_validate` trains one per fold of a protocol and scores the pooled predictions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from emotion_perception.core.errors import ExecutorError, ProtocolError
from emotion_perception.core.labels import EMOTIONS
from emotion_perception.data.datasets import FaceDataset, dataset_names
from emotion_perception.data.face_data import CropData, FeatureRows, LandmarkData, lower_covered
from emotion_perception.data.screening import Screening, training_rows
from emotion_perception.experiments.evaluation import (
    leave_dataset_out,
    mean_ci95,
    metrics,
    predicted_labels,
    split_indices,
)
from emotion_perception.experiments.executor import ExecutorSettings, Task
from emotion_perception.models.calibration import expected_calibration_error, fit_temperature, temper
from emotion_perception.models.cnn import CnnClassifier
from emotion_perception.models.cnn_training import TrainSettings, train_cnn
from emotion_perception.models.landmark_model import EmotionModel, ForestSettings
from emotion_perception.models.visibility import VisibilityModel


class Recipe(Protocol):
    """How fresh models of one kind are trained and scored on the rows of one prepared dataset."""

    found: np.ndarray  # rows that hold a face

    def fit(self, index: np.ndarray, labels: np.ndarray, classes: list[str], groups: np.ndarray,
            seed: int) -> Any: ...

    def proba(self, model: Any, index: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


class ForestRecipe:
    """Fresh forests on the landmark features of a dataset (feature rows computed once). Forests with a
    covered-face part also train on `occluded` (`data.face_data.occluded_rows`: the rows under each lower-face
    occluder), and every forest that has one scores the faces the visibility check finds covered below with it.
    With a `screening` of the images, the rows of faces found covered are repaired (`data.screening`). A recipe
    that only trains (`scores=False`) skips the visibility check of every image that routing needs."""

    def __init__(self, settings: ForestSettings, data: LandmarkData, occluded: Sequence[FeatureRows] = (),
                 screening: Screening | None = None, scores: bool = True) -> None:
        self.settings = settings
        self.rows = data.feature_rows(settings.feature_set, settings.mirror)
        self.found = data.extracted.found
        self.strata = dataset_names(data.dataset)
        self.occluded = occluded
        self.screening = screening
        self.scores = scores
        self.covered = lower_covered(data, VisibilityModel.load()) if settings.covered and scores else None

    def fit(self, index: np.ndarray, labels: np.ndarray, classes: list[str], groups: np.ndarray, seed: int,
            header: dict[str, Any] | None = None) -> EmotionModel:
        occluded, fs = [], self.settings.feature_set
        for k, rows in enumerate(self.occluded):
            kept = index[rows.found[index]]
            occluded.append((*training_rows(rows, kept, self.screening, fs, seed + 1 + k), labels[kept],
                             self.strata[kept]))
        return self.settings.fit(*training_rows(self.rows, index, self.screening, fs, seed), labels[index], seed,
                                 header, self.strata[index], occluded)

    def proba(self, model: EmotionModel, index: np.ndarray) -> np.ndarray:
        if not self.scores:
            raise ValueError("this forest recipe was made to train only (scores=False): it cannot route faces")
        covered = None if self.covered is None else self.covered[index]
        return model.predict_features(*self.rows.at(index), covered=covered)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"feature_set": s.feature_set, "n_estimators": s.n_estimators, "max_features": s.max_features,
                "mirror": s.mirror, "balance": s.balance, "bag_size": s.bag_size, "covered": s.covered,
                "covered_estimators": s.covered_estimators}


class CnnRecipe:
    """Fresh CNNs on the face crops of a dataset (validation subjects held out of each training part)."""

    def __init__(self, settings: TrainSettings, data: CropData, dataset: FaceDataset) -> None:
        self.settings, self.data, self.strata = settings, data, dataset_names(dataset)
        self.found = data.found

    def fit(self, index: np.ndarray, labels: np.ndarray, classes: list[str], groups: np.ndarray,
            seed: int) -> CnnClassifier:
        settings = replace(self.settings, seed=seed, progress=False)
        return train_cnn(self.data.crops[index], labels[index], settings, classes, groups[index],
                         self.data.landmarks[index], strata=self.strata[index]).classifier

    def proba(self, model: CnnClassifier, index: np.ndarray) -> np.ndarray:
        return model.predict_crops(self.data.crops[index])

    def describe(self) -> dict[str, Any]:
        from emotion_perception.models.cnn import resolve_device

        s = self.settings
        return {"model_kind": "cnn", "arch": s.arch, "input_size": s.input_size, "epochs": s.epochs,
                "device": resolve_device(s.device)[0]}


def predict(recipe: Recipe, model: Any, index: np.ndarray) -> np.ndarray:
    """The model's labels for the rows at `index`; None where no face was found."""
    return predicted_labels(model.labels, recipe.found, index, lambda rows: recipe.proba(model, rows))


def fit_fold(shared: tuple[Recipe, np.ndarray, list[str], np.ndarray], job: tuple[int, np.ndarray, np.ndarray, int]
             ) -> np.ndarray:
    """The executor's task function for one fold: a fresh model on the faces of `train`, its labels for `test`."""
    recipe, labels, classes, groups = shared
    train, test, seed = job[1:]
    model = recipe.fit(train[recipe.found[train]], labels, classes, groups, seed)
    return predict(recipe, model, test)


def cross_validate(
    recipe: Recipe,
    dataset: FaceDataset,
    protocol: str,
    folds: int = 10,
    repeats: int = 1,
    seed: int = 0,
    test_mask: np.ndarray | None = None,
    progress: bool = False,
    executor: ExecutorSettings | None = None,
    threads: int = 1,
) -> dict[str, object]:
    """Train a fresh model per fold (on the faces found in its training part) and score the pooled predictions.

    With repeats > 1 the folds are reshuffled with seeds seed..seed+repeats-1; the metrics are those of the first
    repeat, with the accuracy's mean and 95% CI over repeats added. Every fold of every repeat is one task of
    `executor` (default: this process), run with `threads` threads. Leave-dataset-out: see
    `cross_validate_by_dataset`.
    """
    if protocol == "leave-dataset-out":
        if repeats != 1:
            raise ProtocolError("leave-dataset-out has fixed folds (one per dataset): use --repeats 1")
        return cross_validate_by_dataset(recipe, dataset, seed, progress)[0]
    labels = dataset.labels.astype(str)
    classes = sorted(set(labels))
    started = time.perf_counter()
    splits = [list(split_indices(protocol, dataset, folds, seed + repeat, test_mask)) for repeat in range(repeats)]
    tasks = [Task(f"repeat{repeat}/fold{k}", (repeat, train, test, seed + repeat))
             for repeat, parts in enumerate(splits) for k, (train, test) in enumerate(parts)]
    predictions = [np.full(len(labels), None, dtype=object) for _ in range(repeats)]
    fold_accuracies: dict[int, list[float]] = {}
    with (executor or ExecutorSettings()).make(threads, len(tasks)) as pool, tqdm(
            total=len(tasks), desc=f"folds x repeats ({pool.workers} worker{'s' if pool.workers > 1 else ''})",
            disable=not progress) as bar:
        for outcome in pool.run(fit_fold, (recipe, labels, classes, dataset.groups()), tasks):
            repeat, _, test, _ = outcome.task.args
            if outcome.error is not None:
                raise ExecutorError(f"{outcome.task.key}: {outcome.error}")
            predictions[repeat][test] = outcome.value
            bar.update()
    for task in tasks:  # in fold order, whatever order they finished in
        repeat, _, test, _ = task.args
        fold_accuracies.setdefault(repeat, []).append(float(np.mean(predictions[repeat][test] == labels[test])))
    accuracies: list[float] = []
    first: dict[str, object] = {}
    for repeat in range(repeats):
        tested = np.zeros(len(labels), bool)
        for _, test in splits[repeat]:
            tested[test] = True
        result = metrics(labels[tested], predictions[repeat][tested], classes)
        accuracies.append(float(result["accuracy"]))
        first = first or {**result, "fold_accuracy": fold_accuracies[repeat]}
    mean, half = mean_ci95(accuracies)
    return {
        **first, "protocol": protocol, "folds": folds, "repeats": repeats, "seed": seed,
        "accuracy_mean": mean, "accuracy_ci95": half, "accuracy_repeats": accuracies, **recipe.describe(),
        "seconds": round(time.perf_counter() - started, 2), "executor": pool.description,
    }


def class_probabilities(recipe: Recipe, model: Any, index: np.ndarray) -> np.ndarray:
    """(len(index), len(EMOTIONS)) probabilities of the rows at `index` in the columns of every emotion (zero for
    the classes the model does not know, NaN rows where no face was found)."""
    out = np.full((len(index), len(EMOTIONS)), np.nan)
    hit = recipe.found[index]
    if hit.any():
        out[hit] = 0.0
        columns = [EMOTIONS.index(label) for label in model.labels]
        out[np.ix_(np.flatnonzero(hit), columns)] = recipe.proba(model, index[hit])
    return out


def cross_validate_by_dataset(recipe: Recipe, dataset: FaceDataset, seed: int = 0,
                              progress: bool = False) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """Each dataset of the mix held out in turn, a fresh model trained on the others: `per_dataset` metrics (the
    classes a model never saw count as wrong) with the expected calibration error before and after temperature
    scaling, `accuracy_mean` = their unweighted mean, the pooled metrics, and the temperature fitted on every
    held-out prediction (what the shipped model gets). Also returns the held-out probabilities, their true labels
    and datasets."""
    labels = dataset.labels.astype(str)
    classes = sorted(set(labels))
    groups = dataset.groups()
    started = time.perf_counter()
    proba = np.full((len(labels), len(EMOTIONS)), np.nan)
    held_out = np.full(len(labels), "", dtype=object)
    per_dataset: dict[str, dict[str, object]] = {}
    for name, train, test in tqdm(leave_dataset_out(dataset), desc="held-out datasets", disable=not progress):
        train = train[recipe.found[train]]
        model = recipe.fit(train, labels, sorted(set(labels[train])), groups, seed)
        proba[test], held_out[test] = class_probabilities(recipe, model, test), name
        unknown = sorted(set(labels[test]) - set(model.labels))
        per_dataset[name] = {"n_train": len(train), "unknown_classes": unknown,
                             "n_unknown_class": int(np.isin(labels[test], unknown).sum())}
        if progress:
            print(f"held out {name}: trained on {len(train)}", flush=True)
    tested = held_out != ""
    predictions = np.array([None if np.isnan(row[0]) else EMOTIONS[int(row.argmax())] for row in proba], dtype=object)
    truth = np.array([EMOTIONS.index(label) for label in labels])
    faces = tested & ~np.isnan(proba[:, 0])
    temperature = fit_temperature(proba[faces], truth[faces])
    for name, result in per_dataset.items():
        rows = held_out == name
        scored, others = rows & faces, faces & ~rows
        nested = fit_temperature(proba[others], truth[others])  # fitted without the held-out dataset
        result.update(metrics(labels[rows], predictions[rows], sorted(set(labels[rows]))),
                      ece=expected_calibration_error(proba[scored], truth[scored]),
                      ece_calibrated=expected_calibration_error(temper(proba[scored], nested), truth[scored]),
                      temperature_without_it=nested)
    pooled = metrics(labels[tested], predictions[tested], classes)
    accuracies = [float(r["accuracy"]) for r in per_dataset.values()]
    summary = {
        **pooled, "protocol": "leave-dataset-out", "per_dataset": per_dataset,
        "accuracy_mean": float(np.mean(accuracies)), "accuracy_min": float(np.min(accuracies)),
        "accuracy_pooled": pooled["accuracy"], "temperature": temperature,
        "ece_pooled": expected_calibration_error(proba[faces], truth[faces]),
        "ece_pooled_calibrated": expected_calibration_error(temper(proba[faces], temperature), truth[faces]),
        "seed": seed, **recipe.describe(), "seconds": round(time.perf_counter() - started, 2),
    }
    return summary, {"proba": proba, "labels": labels.astype(str), "held_out": held_out.astype(str),
                     "emotions": np.array(EMOTIONS)}
