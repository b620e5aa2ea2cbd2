"""The landmark emotion model: a feature set plus a flat RandomForest, saved as one safe `.npz` file."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception import features
from emotion_perception.core.occlusion import LOWER_KINDS
from emotion_perception.core.types import Face
from emotion_perception.models.balance import BALANCES, balancing_weights
from emotion_perception.models.calibration import temper
from emotion_perception.models.forest import FlatForest, load_forests, save_forest, train_balanced_forest, train_forest
from emotion_perception.models.visibility import VisibilityModel

DEFAULT_MODEL = "default_forest.npz"
DEFAULT_MAX_FEATURES = "sqrt"


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("emotion_perception") / "models" / DEFAULT_MODEL))


class EmotionModel:
    """Landmarks (n, 68, 2) -> emotion class probabilities.

    With `mirror` set, each face is also scored as its left-right mirror image and the two
    probability vectors are averaged (the forest was trained on both).

    With a `covered` forest (trained on faces whose lower part is covered: surgical masks, boxes, hands drawn from
    the landmarks and the images re-read by dlib), faces whose lower part the visibility check finds covered are
    scored by it instead of the main forest; the others are untouched.
    """

    def __init__(self, forest: FlatForest, feature_set: str, mirror: bool, header: dict[str, Any],
                 covered: FlatForest | None = None):
        self.forest = forest
        self.feature_set = feature_set
        self.mirror = mirror
        self.header = header
        self.covered = covered
        self._visibility: VisibilityModel | None = None

    @property
    def labels(self) -> list[str]:
        return self.forest.classes

    @property
    def name(self) -> str:
        return str(self.header.get("name", "forest"))

    @classmethod
    def load(cls, path: str | Path | None = None) -> EmotionModel:
        forest, extra, header = load_forests(path or default_model_path())
        return cls(forest, header["feature_set"], bool(header.get("mirror", False)), header, extra.get("covered"))

    def save(self, path: str | Path) -> None:
        save_forest(path, self.forest, {**self.header, "feature_set": self.feature_set, "mirror": self.mirror},
                    {"covered": self.covered} if self.covered is not None else None)

    @property
    def needs_image(self) -> bool:
        return features.needs_image(self.feature_set)

    @property
    def visibility(self) -> VisibilityModel:
        """The visibility check that routes faces to the covered forest (the shipped one unless one is set)."""
        if self._visibility is None:
            self._visibility = VisibilityModel.load()
        return self._visibility

    @visibility.setter
    def visibility(self, model: VisibilityModel) -> None:
        self._visibility = model

    def lower_covered(self, gray: np.ndarray, faces: Sequence[Face]) -> np.ndarray | None:
        """Per face, whether the visibility check finds its lower part covered; None without a covered forest."""
        if self.covered is None:
            return None
        return np.array(["lower" in self.visibility.occluded(a) for a in self.visibility.assess(gray, faces)])

    def predict_proba(self, gray: np.ndarray, faces: Sequence[Face],
                      covered: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """The `Classifier` protocol: probabilities of the faces of one grey image; faces whose lower part is
        covered (by `covered`, else by this model's own visibility check) go to the covered-face forest."""
        if self.covered is None or covered is None:
            lower = self.lower_covered(gray, faces)
        else:
            lower = np.array(["lower" in regions for regions in covered])
        return self.predict_landmarks(np.stack([face.landmarks for face in faces]), [gray] * len(faces), lower)

    def predict_landmarks(self, landmarks: np.ndarray, grays: Sequence[np.ndarray] | None = None,
                          covered: np.ndarray | None = None) -> np.ndarray:
        """(n, 68, 2) or (68, 2) landmarks -> (n, n_classes) probabilities; columns follow `labels`.

        `grays`: each face's grey image, needed when `needs_image` (appearance feature sets); `covered`: per face,
        whether its lower part is covered (scored by the covered forest where the model has one).
        """
        if not self.mirror:
            return self.predict_features(features.compute(self.feature_set, landmarks, grays), covered=covered)
        return self.predict_features(*features.compute_with_mirrored(self.feature_set, landmarks, grays),
                                     covered=covered)

    @property
    def temperature(self) -> float:
        """The calibration temperature of the scores (1.0: as the forest votes; see `models.calibration`)."""
        return float(self.header.get("temperature", 1.0))

    def predict_features(self, x: np.ndarray, x_mirrored: np.ndarray | None = None,
                         covered: np.ndarray | None = None) -> np.ndarray:
        """Probabilities from precomputed feature rows (and, for mirror models, their mirrored rows); rows where
        `covered` is true are scored by the covered forest, where the model has one."""
        if self.mirror and x_mirrored is None:
            raise ValueError("a mirror model needs the mirrored feature rows too")
        proba = self._votes(self.forest, x, x_mirrored)
        if self.covered is not None and covered is not None and np.any(covered):
            rows = np.asarray(covered, bool)
            proba[rows] = self._votes(self.covered, x[rows], None if x_mirrored is None else x_mirrored[rows])
        return temper(proba, self.temperature)

    def _votes(self, forest: FlatForest, x: np.ndarray, x_mirrored: np.ndarray | None) -> np.ndarray:
        if not self.mirror:
            return forest.predict_proba(x)
        proba = forest.predict_proba(np.vstack([x, x_mirrored]))
        return (proba[: len(x)] + proba[len(x):]) / 2


@dataclass
class ForestSettings:
    """How a fresh forest is trained (the `train forest` command, each fold of `evaluate`, each trial)."""

    feature_set: str = features.DEFAULT_FEATURE_SET
    n_estimators: int = 100
    max_features: float | str = DEFAULT_MAX_FEATURES
    mirror: bool = True
    n_jobs: int = 2
    # "equal": balanced bagging, every training dataset (stratum) the same share and every class within it the
    # same (chosen by the leave-one-dataset-out protocol, docs/models.md); "none": scikit-learn's bootstrap.
    balance: str = "equal"
    bag_size: int = 12000
    # A second forest for faces whose lower part is covered, trained on the clean rows and the rows of the same
    # faces under a random lower-face occluder (`occluded` of `fit`); see `EmotionModel`.
    covered: bool = True
    # Its trees: it trains on four times the rows; 300 trees scored masked CK+48 faces 1.2 points higher than 100
    # (trials, 30 paired repeats; docs/robustness.md).
    covered_estimators: int = 300

    @classmethod
    def like(cls, model: EmotionModel, n_jobs: int = 2) -> ForestSettings:
        """The settings `model` was trained with (models from before balancing used scikit-learn's bootstrap)."""
        h = model.header
        return cls(model.feature_set, int(h.get("n_estimators", 100)), h.get("max_features", DEFAULT_MAX_FEATURES),
                   model.mirror, n_jobs, h.get("balance", "none"), int(h.get("bag_size", 12000)),
                   model.covered is not None,
                   cls.covered_estimators if model.covered is None else model.covered.n_trees)

    def check(self) -> None:
        """ValueError naming a setting out of range."""
        if min(self.n_estimators, self.covered_estimators, self.bag_size) < 1:
            raise ValueError(f"need at least one tree in each forest and one row per tree, got "
                             f"{self.n_estimators}, {self.covered_estimators} and {self.bag_size}")
        if self.balance not in BALANCES:
            raise ValueError(f"balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")

    def fit(self, x: np.ndarray, x_mirrored: np.ndarray | None, labels: np.ndarray, seed: int,
            header: dict[str, Any] | None = None, strata: np.ndarray | None = None,
            occluded: Sequence[OccludedRows] = ()) -> EmotionModel:
        """A forest trained on feature rows (all holding a face), with their mirrored rows when `mirror`;
        `strata` names each row's dataset for the balance (None: one dataset). With `covered` set, `occluded`
        (the rows of the faces under each lower-face occluder, one entry per occluder) trains the covered forest,
        with the clean rows."""
        self.check()
        if self.covered and not occluded:
            raise ValueError("a forest with a covered-face part needs the rows of occluded faces")
        forest = self._train(x, x_mirrored, labels, strata, seed, self.n_estimators)
        meta = {"n_estimators": self.n_estimators, "max_features": self.max_features, "balance": self.balance,
                "bag_size": self.bag_size, "seed": seed, "n_train": len(labels), **(header or {})}
        covered = None
        if self.covered:
            rows = functools.reduce(_stack, occluded, (x, x_mirrored, labels, strata))
            covered = self._train(*rows, seed, self.covered_estimators)
            meta["covered"] = {"n_train": len(rows[2]), "n_estimators": self.covered_estimators,
                               "occluders": list(LOWER_KINDS),
                               "copies": "each face clean and once under each occluder, as dlib re-reads it",
                               "routing": "the visibility check's lower-face flag"}
        return EmotionModel(forest, self.feature_set, self.mirror, meta, covered)

    def _train(self, x: np.ndarray, x_mirrored: np.ndarray | None, labels: np.ndarray, strata: np.ndarray | None,
               seed: int, n_estimators: int) -> FlatForest:
        y = np.asarray(labels).astype(str)
        weights = balancing_weights(y, strata, self.balance)
        if self.mirror:
            x, y, weights = np.vstack([x, x_mirrored]), np.concatenate([y, y]), np.concatenate([weights, weights])
        if self.balance == "none":
            return FlatForest.from_sklearn(train_forest(x, y, n_estimators, self.max_features, seed, self.n_jobs))
        return train_balanced_forest(x, y, weights, n_estimators, self.bag_size, self.max_features, seed,
                                     self.n_jobs)


# Feature rows, mirrored rows (or None), labels and strata (or None) of faces under one lower-face occluder.
OccludedRows = tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]


def _stack(a: OccludedRows, b: OccludedRows) -> OccludedRows:
    """Two sets of training rows as one."""
    mirrored = None if a[1] is None or b[1] is None else np.vstack([a[1], b[1]])
    strata = None if a[3] is None or b[3] is None else np.concatenate([a[3], b[3]])
    return np.vstack([a[0], b[0]]), mirrored, np.concatenate([np.asarray(a[2]), np.asarray(b[2])]), strata
