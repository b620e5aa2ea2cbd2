"""RandomForest training, export to a code-free file format, and fast numpy inference from it.

A trained scikit-learn forest is flattened into arrays (all trees' nodes concatenated, leaves pointing
at themselves) and saved as an `.npz` holding only numeric arrays plus a JSON header. Loading uses
`np.load(allow_pickle=False)`: nothing in the file can execute code. `FlatForest.predict_proba`
equals scikit-learn's `predict_proba` on the same input.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from emotion_perception.core.atomic import atomic_path
from emotion_perception.core.errors import ForestFileError

FORMAT = "emotion_perception.flat_forest"
FORMAT_VERSION = 1



def train_forest(
    features: np.ndarray,
    labels: np.ndarray,
    n_estimators: int = 100,
    max_features: float | str = "sqrt",
    seed: int = 0,
    n_jobs: int = 1,
) -> RandomForestClassifier:
    """Fit scikit-learn's RandomForestClassifier (100 trees by default, as in Shehu et al.)."""
    forest = RandomForestClassifier(
        n_estimators=n_estimators, max_features=max_features, random_state=seed, n_jobs=n_jobs
    )
    return forest.fit(features, labels)


def train_balanced_forest(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    n_estimators: int = 100,
    bag_size: int = 12000,
    max_features: float | str = "sqrt",
    seed: int = 0,
    n_jobs: int = 1,
) -> FlatForest:
    """Balanced bagging: each tree (fully grown, `max_features` per split) learns from its own draw of `bag_size`
    rows with replacement, row i drawn with probability `weights[i]` (`models.balance`), instead of a uniform
    bootstrap. A tree whose draw lacks a class gives that class no votes."""
    probabilities = np.asarray(weights, dtype=np.float64)
    probabilities = probabilities / probabilities.sum()

    def grow(index: int) -> DecisionTreeClassifier:
        rng = np.random.default_rng([seed, index])
        counts = np.bincount(rng.choice(len(labels), bag_size, p=probabilities), minlength=len(labels))
        rows = np.flatnonzero(counts)
        tree = DecisionTreeClassifier(max_features=max_features, random_state=int(rng.integers(2**31)))
        return tree.fit(features[rows], labels[rows], sample_weight=counts[rows].astype(np.float64))

    trees = Parallel(n_jobs=n_jobs)(delayed(grow)(i) for i in range(n_estimators))
    classes = sorted(set(np.asarray(labels).astype(str).tolist()))
    return FlatForest.from_trees(trees, classes, features.shape[1],
                                 [[classes.index(str(c)) for c in tree.classes_] for tree in trees])


class FlatForest:
    """A forest as flat arrays; `predict_proba` walks all trees at once, one tree level per numpy step."""

    def __init__(
        self,
        classes: list[str],
        n_features: int,
        roots: np.ndarray,
        children: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        depth: int,
    ) -> None:
        self.classes = list(classes)
        self.n_features = int(n_features)
        self.roots = roots.astype(np.intp)
        self.children = children.astype(np.intp)  # [left0, right0, left1, right1, ...]
        self.feature = feature.astype(np.intp)
        self.threshold = threshold.astype(np.float64)
        self.value = value.astype(np.float64)  # per-node class fractions divided by the tree count
        self.depth = int(depth)
        self._check()
        self._root_slots = 2 * self.roots
        self._slot_children = 2 * self.children
        self._slot_feature = np.repeat(self.feature, 2)
        self._slot_threshold = np.repeat(self.threshold, 2)
        self._slot_value = np.repeat(self.value, 2, axis=0)
        self._slot_leaf = np.repeat(self.children[0::2] == np.arange(len(self.feature)), 2)
        self._pair: dict[str, np.ndarray] | None = None  # the slot arrays twice over, built on first use

    @classmethod
    def from_sklearn(cls, forest: RandomForestClassifier) -> FlatForest:
        """Flatten a fitted forest; leaves get children pointing to themselves."""
        every_class = list(range(len(forest.classes_)))  # its trees learn the encoded classes, all of them
        return cls.from_trees(forest.estimators_, [str(c) for c in forest.classes_], forest.n_features_in_,
                              [every_class] * len(forest.estimators_))

    @classmethod
    def from_trees(cls, trees: list[DecisionTreeClassifier], classes: list[str], n_features: int,
                   columns: list[list[int]]) -> FlatForest:
        """Flatten fitted trees, each voting with its leaves' class fractions; `columns[t]` says which of
        `classes` tree t's value columns are (a tree may know fewer classes than the forest)."""
        roots, children, feature, threshold, value = [], [], [], [], []
        offset, depth = 0, 0
        n_trees = len(trees)
        for estimator, own_columns in zip(trees, columns):
            tree = estimator.tree_
            n = tree.node_count
            own = np.arange(n)
            leaf = tree.children_left < 0
            left = np.where(leaf, own, tree.children_left) + offset
            right = np.where(leaf, own, tree.children_right) + offset
            roots.append(offset)
            children.append(np.stack([left, right], axis=1).ravel())
            feature.append(np.where(leaf, 0, tree.feature))
            threshold.append(np.where(leaf, 0.0, tree.threshold))
            fractions = np.zeros((n, len(classes)))
            fractions[:, own_columns] = tree.value[:, 0, :]
            totals = fractions.sum(axis=1, keepdims=True)
            totals[totals == 0] = 1.0
            value.append(fractions / totals / n_trees)
            depth = max(depth, tree.max_depth)
            offset += n
        return cls(
            classes, n_features, np.array(roots),
            np.concatenate(children), np.concatenate(feature), np.concatenate(threshold),
            np.concatenate(value), depth,
        )

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(n, n_features) -> (n, n_classes) class probabilities, as scikit-learn's predict_proba.

        One or two rows (a face, or a face and its mirror: what a node scores per face) take a path with a
        single flat index per tree and row; larger batches walk a (rows, trees) index array.
        """
        x = np.asarray(features)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (n, {self.n_features}) features, got {x.shape}")
        # scikit-learn compares float32 features with float64 thresholds.
        flat = x.astype(np.float32).astype(np.float64).ravel()
        if len(x) <= 2:
            return self._predict_pair(flat, len(x))
        # Nodes are addressed by twice their index so that `slot + go_right` picks the child directly.
        slot = np.broadcast_to(self._root_slots, (len(x), self.n_trees))
        rows = (np.arange(len(x)) * self.n_features)[:, None]
        for level in range(self.depth):
            go_right = flat.take(self._slot_feature.take(slot) + rows) > self._slot_threshold.take(slot)
            slot = self._slot_children.take(slot + go_right)
            # Most paths end far above the deepest leaf: stop once every tree has reached a leaf.
            if level % 4 == 3 and self._slot_leaf.take(slot).all():
                break
        return self._slot_value.take(slot, axis=0).sum(axis=1)

    def _predict_pair(self, flat: np.ndarray, n_rows: int) -> np.ndarray:
        """predict_proba of one or two rows (`flat`: them, concatenated) over a second copy of the slot arrays
        whose feature indices point into the second row: one gather per step serves both rows."""
        pair = self._pair or self._build_pair()
        if n_rows == 1:
            flat = np.concatenate([flat, flat])
        slot = pair["roots"]
        feature, threshold, children, leaf = pair["feature"], pair["threshold"], pair["children"], pair["leaf"]
        for level in range(self.depth):
            go_right = flat.take(feature.take(slot)) > threshold.take(slot)
            slot = children.take(slot + go_right)
            if level % 3 == 2 and leaf.take(slot).all():
                break
        return pair["value"].take(slot, axis=0).reshape(2, self.n_trees, -1).sum(axis=1)[:n_rows]

    def _build_pair(self) -> dict[str, np.ndarray]:
        n_slots = len(self._slot_feature)
        self._pair = {
            "roots": np.concatenate([self._root_slots, self._root_slots + n_slots]),
            "feature": np.concatenate([self._slot_feature, self._slot_feature + self.n_features]),
            "threshold": np.tile(self._slot_threshold, 2),
            "children": np.concatenate([self._slot_children, self._slot_children + n_slots]),
            "leaf": np.tile(self._slot_leaf, 2),
            "value": np.tile(self._slot_value, (2, 1)),
        }
        return self._pair

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.array(self.classes, dtype=object)[self.predict_proba(features).argmax(axis=1)]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "roots": self.roots, "children": self.children, "feature": self.feature,
            "threshold": self.threshold, "value": self.value,
        }

    def _check(self) -> None:
        n_nodes = len(self.feature)
        problems = []
        if self.children.shape != (2 * n_nodes,) or self.threshold.shape != (n_nodes,):
            problems.append("node arrays of different lengths")
        if self.value.shape != (n_nodes, len(self.classes)):
            problems.append(f"value shape {self.value.shape} != ({n_nodes} nodes, {len(self.classes)} classes)")
        if n_nodes and (self.children.min() < 0 or self.children.max() >= n_nodes):
            problems.append("child index out of range")
        if self.roots.size == 0 or self.roots.min() < 0 or self.roots.max() >= max(n_nodes, 1):
            problems.append("root index out of range")
        if n_nodes and (self.feature.min() < 0 or self.feature.max() >= self.n_features):
            problems.append("feature index out of range")
        if not np.all(np.isfinite(self.value)):
            problems.append("non-finite leaf values")
        if self.depth < 0 or self.depth > 10_000:
            problems.append(f"implausible depth {self.depth}")
        if problems:
            raise ValueError("; ".join(problems))


def save_forest(path: str | Path, forest: FlatForest, header: dict[str, Any],
                extra: Mapping[str, FlatForest] | None = None) -> None:
    """Write the forest, the `extra` forests of the same model under their names (e.g. "covered") and a JSON
    header (feature set, labels, recipe, metrics) to one `.npz` file.

    Written to a temporary name first, so a failed write never leaves a half file at `path`.
    """
    path = Path(path)
    extra = dict(extra or {})
    meta = {key: value for key, value in header.items() if key != "extra_forests"}
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, **_shape(forest))
    if extra:
        meta["extra_forests"] = {name: _shape(part) for name, part in extra.items()}
    arrays = forest.arrays()
    for name, part in extra.items():
        arrays.update({f"{name}.{key}": value for key, value in part.arrays().items()})
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    with atomic_path(path) as partial, partial.open("wb") as handle:
        np.savez_compressed(handle, header=blob, **arrays)


def _shape(forest: FlatForest) -> dict[str, Any]:
    return {"classes": forest.classes, "n_features": forest.n_features, "depth": forest.depth,
            "n_trees": forest.n_trees}


def _from_arrays(shape: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str = "") -> FlatForest:
    return FlatForest(shape["classes"], shape["n_features"], arrays[f"{prefix}roots"], arrays[f"{prefix}children"],
                      arrays[f"{prefix}feature"], arrays[f"{prefix}threshold"], arrays[f"{prefix}value"],
                      shape["depth"])


def load_forest(path: str | Path) -> tuple[FlatForest, dict[str, Any]]:
    """Read the (main) forest of a file written by `save_forest`; ForestFileError names the path and the cause."""
    forest, _, header = load_forests(path)
    return forest, header


def load_forests(path: str | Path) -> tuple[FlatForest, dict[str, FlatForest], dict[str, Any]]:
    """The main forest, the extra forests by name, and the header of a file written by `save_forest`."""
    path = Path(path)
    if not path.is_file():
        raise ForestFileError(f"forest model {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ForestFileError(f"forest model {path}: not an .npz model file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        raw = sorted(key for key, value in arrays.items() if not isinstance(value, np.ndarray))
        if raw:
            raise ValueError(f"members that are not numpy arrays: {raw}")
        header = json.loads(arrays.pop("header").tobytes().decode())
        if header.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format {header.get('format')!r})")
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {header.get('format_version')}, this build reads {FORMAT_VERSION}")
        forest = _from_arrays(header, arrays)
        extra = {name: _from_arrays(shape, arrays, f"{name}.")
                 for name, shape in header.get("extra_forests", {}).items()}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as error:
        raise ForestFileError(f"forest model {path}: unreadable or corrupt ({error})") from None
    return forest, extra, header
