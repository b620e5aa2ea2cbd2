"""Evaluation protocols (train/test index splits), metrics, confidence intervals and confusion plots."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from emotion_perception.core.atomic import save_figure
from emotion_perception.core.errors import ProtocolError
from emotion_perception.core.labels import VALENCE, VALENCE_LABELS
from emotion_perception.data.datasets import FaceDataset, dataset_groups

PROTOCOLS = ("subject-kfold", "paper", "split", "cross", "leave-dataset-out")



def split_indices(
    protocol: str,
    dataset: FaceDataset,
    folds: int = 10,
    seed: int = 0,
    test_mask: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of `dataset` for a protocol.

    subject-kfold: stratified group k-fold by subject (no person on both sides), shuffled by `seed`.
    paper: stratified k-fold over images, as Shehu et al. (people on both sides; for comparison only).
    split: the manifest's train/test column, one fold.
    cross: train where `test_mask` is false, test where it is true (datasets A vs B), one fold.
    leave-dataset-out: one fold per dataset of the mix, held out in turn (see `leave_dataset_out`).
    """
    n = len(dataset)
    y = dataset.labels.astype(str)
    if protocol == "subject-kfold":
        groups = dataset.groups()
        n_groups = len(set(groups))
        if n_groups < folds:
            raise ProtocolError(f"subject-kfold needs at least {folds} subjects, {dataset.name} has {n_groups}")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        yield from splitter.split(np.zeros(n), y, groups)
    elif protocol == "paper":
        smallest = min(np.unique(y, return_counts=True)[1])
        if smallest < folds:
            raise ProtocolError(f"paper protocol with {folds} folds needs {folds} images per class, not {smallest}")
        yield from StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(n), y)
    elif protocol == "leave-dataset-out":
        yield from ((train, test) for _, train, test in leave_dataset_out(dataset))
    elif protocol == "split":
        if dataset.splits is None or any(s is None for s in dataset.splits):
            raise ProtocolError(f"{dataset.name} has no split column in its manifest; use subject-kfold or paper")
        train, test = np.flatnonzero(dataset.splits == "train"), np.flatnonzero(dataset.splits == "test")
        if not len(train) or not len(test):
            raise ProtocolError(f"{dataset.name}: the split column needs both 'train' and 'test' rows")
        yield train, test
    elif protocol == "cross":
        if test_mask is None or not test_mask.any() or test_mask.all():
            raise ProtocolError("cross protocol needs training data (--data) and test data (--test-data)")
        yield np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    else:
        raise ProtocolError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def leave_dataset_out(dataset: FaceDataset) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(held-out dataset, train rows, test rows) for each dataset of the mix in turn: the others train, it tests.
    A folder with a train/test split column (FER2013) is held out with its test rows and trains with its train
    rows."""
    groups = dataset_groups(dataset)
    if len(groups) < 2:
        raise ProtocolError("leave-dataset-out needs at least two datasets (repeat --data; folders that share "
                            f"subjects count as one), got {groups[0][0] if groups else 'none'}")
    splits = dataset.splits if dataset.splits is not None else np.full(len(dataset), None, dtype=object)
    return [(name, np.flatnonzero(~mask & (splits != "test")), np.flatnonzero(mask & (splits != "train")))
            for name, mask in groups]


def saved_model_index(protocol: str, dataset: FaceDataset, test_mask: np.ndarray | None = None) -> np.ndarray:
    """Rows a saved model is scored on: the test side of `cross` (`test_mask`) or `split` (the manifest's test
    rows); every row under the k-fold protocols, which a model trained elsewhere does not need."""
    if test_mask is not None:
        return np.flatnonzero(test_mask)
    if protocol == "split":
        _, test = next(split_indices("split", dataset))
        return test
    if protocol == "cross":
        raise ProtocolError("cross protocol needs test data (--test-data)")
    if protocol == "leave-dataset-out":
        raise ProtocolError("leave-dataset-out trains a model per held-out dataset; score a saved model on "
                            "each dataset with --protocol subject-kfold (every row) or split (its test rows)")
    return np.arange(len(dataset))


def known_label_index(labels: np.ndarray, index: np.ndarray, known: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The rows of `index` whose label a model knows, and the sorted labels it does not know (left out)."""
    keep = np.isin(labels[index].astype(str), list(known))
    if not keep.any():
        raise ProtocolError(f"the model knows none of the labels of the data (it knows {list(known)})")
    return index[keep], sorted(set(labels[index[~keep]].astype(str)))


def predicted_labels(
    classes: Sequence[str], found: np.ndarray, index: np.ndarray, proba: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """The label of the highest probability for each row of `index`, None where `found` says no face was found;
    `proba(rows)` gives the (len(rows), len(classes)) probabilities of rows that hold a face."""
    predictions = np.full(len(index), None, dtype=object)
    hit = np.asarray(found)[index]
    if hit.any():
        predictions[hit] = np.asarray(classes, dtype=object)[proba(index[hit]).argmax(axis=1)]
    return predictions


def metrics(y_true: Sequence[str], y_pred: Sequence[str | None], labels: Sequence[str]) -> dict[str, object]:
    """Accuracy, macro F1, per-class recall, confusion matrix and 3-class (valence) accuracy.

    A prediction of None (no face found) counts as wrong and as no class in the confusion matrix.
    """
    true = np.array([str(t) for t in y_true], dtype=object)
    pred = np.array(["<none>" if p is None else str(p) for p in y_pred], dtype=object)
    labels = list(labels)
    correct = true == pred
    confusion = confusion_matrix(true, pred, labels=labels)
    recall = {
        label: float(correct[true == label].mean()) if (true == label).any() else None for label in labels
    }
    present = [label for label in labels if (true == label).any()]
    true_valence = np.array([VALENCE[t] for t in true], dtype=object)
    pred_valence = np.array([VALENCE.get(p, "<none>") for p in pred], dtype=object)
    return {
        "accuracy": float(correct.mean()) if len(true) else 0.0,
        "macro_f1": float(f1_score(true, pred, labels=present, average="macro", zero_division=0)),
        "per_class_recall": recall,
        "confusion": confusion.tolist(),
        "labels": labels,
        "n": len(true),
        "n_no_face": int((pred == "<none>").sum()),
        "accuracy_3class": float((true_valence == pred_valence).mean()) if len(true) else 0.0,
        "labels_3class": list(VALENCE_LABELS),
        "confusion_3class": confusion_matrix(true_valence, pred_valence, labels=list(VALENCE_LABELS)).tolist(),
    }


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float(array.mean()) if len(array) else 0.0, 0.0
    half = stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    return float(array.mean()), float(half)


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str) -> None:
    """Write a labelled confusion matrix (row-normalised colours, counts in cells) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    figure, axes = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    image = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if fractions[i, j] > 0.6 else "black"
            axes.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    figure.colorbar(image, ax=axes, fraction=0.046, label="row fraction (recall)")
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
