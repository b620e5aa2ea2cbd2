"""Forest experiments on datasets: data loading with cached landmarks, cross-validated predictions."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from emotion_perception.core.errors import DatasetError
from emotion_perception.core.images import read_gray
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.data.datasets import FaceDataset, concat, load_folder
from emotion_perception.data.landmark_cache import ExtractedLandmarks, LandmarkCache, extract_dataset
from emotion_perception.experiments.evaluation import mean_ci95, metrics, split_indices
from emotion_perception.features import sets as features
from emotion_perception.models.landmark_model import EmotionModel, fit_features

DEFAULT_FEATURE_SET = "named_hog"
DEFAULT_MAX_FEATURES = "sqrt"


def parse_data_arg(spec: str) -> tuple[str, list[str] | None, str | None]:
    """`DIR[:label,label][@split]` -> (dir, labels to keep or None, manifest split to keep or None)."""
    spec, _, split = spec.partition("@")
    path, _, labels = spec.partition(":")
    return path, (labels.split(",") if labels else None), (split or None)


def load_datasets(specs: list[str]) -> FaceDataset:
    """One dataset from `--data` arguments."""
    parts = []
    for path, labels, split in map(parse_data_arg, specs):
        dataset = load_folder(path, labels)
        if split is not None:
            if dataset.splits is None or not (dataset.splits == split).any():
                raise DatasetError(f"{path}: no rows with split {split!r} in its manifest")
            dataset = dataset.subset(dataset.splits == split)
        parts.append(dataset)
    return concat(parts)


@dataclass
class FeatureRows:
    """Feature rows of every image (NaN where no face was found), and of the mirrored faces."""

    x: np.ndarray
    x_mirrored: np.ndarray | None


@dataclass
class LandmarkData:
    """A dataset with the landmarks of its primary faces."""

    dataset: FaceDataset
    extracted: ExtractedLandmarks

    def feature_rows(self, feature_set: str, mirror: bool) -> FeatureRows:
        """Features of all faces, computed once (re-reading the images for appearance sets)."""
        found = np.flatnonzero(self.extracted.found)
        points = self.extracted.landmarks[found]
        grays = [read_gray(self.dataset.paths[i]) for i in found] if features.needs_image(feature_set) else None
        n_columns = len(features.feature_names(feature_set))
        x = np.full((len(self.dataset), n_columns), np.nan)
        x[found] = features.compute(feature_set, points, grays)
        mirrored = None
        if mirror:
            mirrored = np.full_like(x, np.nan)
            mirrored[found] = features.compute_mirrored(feature_set, points, grays)
        return FeatureRows(x, mirrored)


def with_landmarks(
    dataset: FaceDataset, analyzer: FaceAnalyzer | None = None, cache: LandmarkCache | None = None,
    progress: bool = True,
) -> LandmarkData:
    return LandmarkData(dataset, extract_dataset(dataset, analyzer or FaceAnalyzer(), cache, progress))


@dataclass
class ForestSettings:
    """How a fresh forest is trained in each fold."""

    feature_set: str = DEFAULT_FEATURE_SET
    n_estimators: int = 100
    max_features: float | str = DEFAULT_MAX_FEATURES
    mirror: bool = True
    n_jobs: int = 2

    def fit(self, rows: FeatureRows, index: np.ndarray, labels: np.ndarray, seed: int,
            header: dict | None = None) -> EmotionModel:
        """A forest trained on the rows at `index` (all of which must hold a face)."""
        mirrored = rows.x_mirrored[index] if rows.x_mirrored is not None else None
        return fit_features(rows.x[index], mirrored, labels[index], self.feature_set, self.n_estimators,
                            self.max_features, seed, self.n_jobs, header)


def predict_all(model: EmotionModel, data: LandmarkData, rows: FeatureRows, index: np.ndarray) -> np.ndarray:
    """Predicted labels for `index`; None where no face was found."""
    predictions = np.full(len(index), None, dtype=object)
    found = data.extracted.found[index]
    if found.any():
        faces = index[found]
        mirrored = rows.x_mirrored[faces] if rows.x_mirrored is not None else None
        proba = model.predict_features(rows.x[faces], mirrored)
        predictions[found] = np.array(model.labels, dtype=object)[proba.argmax(axis=1)]
    return predictions


def cross_validate(
    data: LandmarkData,
    settings: ForestSettings,
    protocol: str,
    folds: int = 10,
    repeats: int = 1,
    seed: int = 0,
    test_mask: np.ndarray | None = None,
    progress: bool = False,
) -> dict[str, object]:
    """Train a fresh forest per fold (on faces found in the training part) and score the pooled predictions.

    With repeats > 1 the folds are reshuffled with seeds seed..seed+repeats-1; the metrics are those of
    the first repeat, with accuracy mean and 95% CI over repeats added.
    """
    labels = data.dataset.labels.astype(str)
    classes = sorted(set(labels))
    accuracies: list[float] = []
    first: dict[str, object] = {}
    started = time.perf_counter()
    rows = data.feature_rows(settings.feature_set, settings.mirror)
    for repeat in range(repeats):
        predictions = np.full(len(labels), None, dtype=object)
        tested = np.zeros(len(labels), bool)
        fold_accuracies = []
        splits = list(split_indices(protocol, data.dataset, folds, seed + repeat, test_mask))
        for train, test in tqdm(splits, desc=f"folds (repeat {repeat + 1}/{repeats})", disable=not progress):
            train = train[data.extracted.found[train]]
            model = settings.fit(rows, train, labels, seed=seed + repeat)
            predictions[test] = predict_all(model, data, rows, test)
            tested[test] = True
            fold_accuracies.append(float(np.mean(predictions[test] == labels[test])))
        result = metrics(labels[tested], predictions[tested], classes)
        accuracies.append(float(result["accuracy"]))
        first = first or {**result, "fold_accuracy": fold_accuracies}
    mean, half = mean_ci95(accuracies)
    return {
        **first, "protocol": protocol, "folds": folds, "repeats": repeats, "seed": seed,
        "accuracy_mean": mean, "accuracy_ci95": half, "accuracy_repeats": accuracies,
        "feature_set": settings.feature_set, "n_estimators": settings.n_estimators,
        "max_features": settings.max_features, "mirror": settings.mirror,
        "seconds": round(time.perf_counter() - started, 2),
    }
