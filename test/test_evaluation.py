"""Protocols never leak subjects across a split; metrics are computed as defined."""

from pathlib import Path

import numpy as np
import pytest
from png_checks import check_png, figure_pixels

from emotion_perception.core.errors import ProtocolError
from emotion_perception.data.datasets import FaceDataset
from emotion_perception.experiments.evaluation import mean_ci95, metrics, plot_confusion, split_indices


def toy_dataset(n_subjects: int = 12, per_subject: int = 6, with_split: bool = False) -> FaceDataset:
    labels = np.array(["happy", "sadness", "anger"] * (n_subjects * per_subject // 3), dtype=object)
    subjects = np.repeat([f"S{i:03d}" for i in range(n_subjects)], per_subject).astype(object)
    n = len(labels)
    splits = np.where(np.arange(n) % 4 == 0, "test", "train").astype(object) if with_split else None
    return FaceDataset(Path("."), "toy", [Path(f"{i}.png") for i in range(n)], labels, subjects, splits,
                       np.array(["toy"] * n, dtype=object))


def test_subject_kfold_keeps_each_subject_on_one_side_and_covers_everything():
    data = toy_dataset()
    seen = []
    for train, test in split_indices("subject-kfold", data, folds=4, seed=1):
        assert not set(data.subjects[train]) & set(data.subjects[test])
        seen.extend(test)
    assert sorted(seen) == list(range(len(data)))


def test_paper_protocol_is_stratified_over_images():
    data = toy_dataset()
    for _, test in split_indices("paper", data, folds=4, seed=0):
        _, counts = np.unique(data.labels[test], return_counts=True)
        assert counts.max() - counts.min() <= 1


def test_split_and_cross_protocols():
    data = toy_dataset(with_split=True)
    ((train, test),) = split_indices("split", data)
    assert set(data.splits[test]) == {"test"} and set(data.splits[train]) == {"train"}
    mask = np.arange(len(data)) >= 60
    ((train, test),) = split_indices("cross", data, test_mask=mask)
    assert train.max() < 60 <= test.min()
    with pytest.raises(ValueError, match="no split column"):
        list(split_indices("split", toy_dataset()))
    with pytest.raises(ValueError, match="at least 20 subjects"):
        list(split_indices("subject-kfold", toy_dataset(), folds=20))
    with pytest.raises(ValueError, match="unknown protocol"):
        list(split_indices("random", data))


def test_metrics_on_a_hand_checked_example():
    true = ["happy", "happy", "sadness", "anger", "surprise", "neutral"]
    pred = ["happy", "surprise", "anger", "anger", "happy", None]
    labels = ["anger", "happy", "neutral", "sadness", "surprise"]
    result = metrics(true, pred, labels)
    assert result["accuracy"] == pytest.approx(2 / 6)
    assert result["per_class_recall"] == {"anger": 1.0, "happy": 0.5, "neutral": 0.0, "sadness": 0.0,
                                          "surprise": 0.0}
    assert result["confusion"][1] == [0, 1, 0, 0, 1]  # happy -> happy, surprise
    assert result["n"] == 6 and result["n_no_face"] == 1
    # valence: happy/surprise positive; sadness->anger is negative->negative; neutral->None wrong
    assert result["accuracy_3class"] == pytest.approx(5 / 6)


def test_confidence_interval_matches_the_t_formula():
    mean, half = mean_ci95([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82)
    assert half == pytest.approx(4.302653 * 0.02 / np.sqrt(3), rel=1e-5)
    assert mean_ci95([0.5]) == (0.5, 0.0)


@pytest.mark.parametrize("labels", [["happy", "sadness"], ["anger", "disgust", "fear", "happy", "neutral", "sad",
                                                            "surprise"]])
def test_confusion_plot_is_written(tmp_path: Path, labels: list[str]):
    out = tmp_path / "c.png"
    n = len(labels)
    plot_confusion(np.eye(n, dtype=int) * 3 + 1, labels, out, "toy")
    # a picture of the figure's size (inches x 120 dpi, growing with the classes), not blank: the blue heat map
    check_png(out, size=figure_pixels(1.0 + 0.8 * n, 0.8 + 0.7 * n, 120))


def folder(name: str, n: int, subjects: list[str] | None, splits: list[str] | None = None) -> FaceDataset:
    labels = np.array(["happy", "sadness"] * (n // 2), dtype=object)
    return FaceDataset(Path(name), name, [Path(f"{name}/{i}.png") for i in range(n)], labels,
                       None if subjects is None else np.array(subjects, dtype=object),
                       None if splits is None else np.array(splits, dtype=object), np.array([name] * n, dtype=object))


def test_leave_dataset_out_joins_folders_that_share_people_and_holds_out_test_splits():
    from emotion_perception.data.datasets import concat, dataset_groups
    from emotion_perception.experiments.evaluation import leave_dataset_out

    ck = folder("ck", 4, ["S1", "S1", "S2", "S2"])
    ck_neutral = folder("ck_neutral", 2, ["S2", "S3"])  # shares S2 with ck: the same people
    jaffe = folder("jaffe", 4, ["KA", "KA", "KM", "KM"])
    fer = folder("fer", 6, None, ["train", "train", "train", "train", "test", "test"])
    data = concat([ck, ck_neutral, jaffe, fer])
    assert [name for name, _ in dataset_groups(data)] == ["ck+ck_neutral", "jaffe", "fer"]
    folds = {name: (train, test) for name, train, test in leave_dataset_out(data)}
    sources = data.sources
    train, test = folds["ck+ck_neutral"]
    assert set(sources[test]) == {"ck", "ck_neutral"} and len(test) == 6
    assert set(sources[train]) == {"jaffe", "fer"} and not (data.splits[train] == "test").any()
    train, test = folds["fer"]
    assert list(data.splits[test]) == ["test", "test"] and set(sources[train]) == {"ck", "ck_neutral", "jaffe"}
    for train, test in folds.values():
        assert not set(train) & set(test)
    with pytest.raises(ProtocolError, match="at least two datasets"):
        leave_dataset_out(concat([ck, ck_neutral]))
