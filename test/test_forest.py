"""Flat forest export: equal to scikit-learn's predict_proba, safe and strict loading."""

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from emotion_perception.core.errors import ForestFileError
from emotion_perception.models.forest import FlatForest, load_forest, save_forest, train_balanced_forest, train_forest
from emotion_perception.models.landmark_model import ForestSettings


@pytest.fixture(scope="module")
def fitted():
    x, y = make_classification(n_samples=600, n_features=40, n_informative=12, n_classes=5, random_state=3)
    labels = np.array(["anger", "fear", "happy", "neutral", "sadness"])[y]
    return train_forest(x[:500], labels[:500], n_estimators=100, seed=1), x[500:]


def test_flat_forest_equals_sklearn_predict_proba(fitted):
    forest, x = fitted
    flat = FlatForest.from_sklearn(forest)
    np.testing.assert_allclose(flat.predict_proba(x), forest.predict_proba(x), rtol=0, atol=1e-12)
    for row in x[:10]:  # the single-row path
        np.testing.assert_allclose(flat.predict_proba(row), forest.predict_proba(row[None]), rtol=0, atol=1e-12)
    for pair in (x[10:12], x[40:42], x[[5, 5]]):  # the two-row path (a face and its mirror)
        np.testing.assert_allclose(flat.predict_proba(pair), forest.predict_proba(pair), rtol=0, atol=1e-12)
    assert list(flat.predict(x)) == list(forest.predict(x))
    assert flat.classes == list(forest.classes_)


def test_thresholds_compare_like_sklearn_on_float32_ties(fitted):
    forest, x = fitted
    flat = FlatForest.from_sklearn(forest)
    tree = forest.estimators_[0].tree_
    probe = x[:1].copy()
    probe[0, tree.feature[0]] = tree.threshold[0]  # exactly on the root's threshold
    np.testing.assert_allclose(flat.predict_proba(probe), forest.predict_proba(probe), atol=1e-12)
    batch = np.vstack([probe, x[:4]])  # the batch path too
    np.testing.assert_allclose(flat.predict_proba(batch), forest.predict_proba(batch), atol=1e-12)


def test_save_load_roundtrip(fitted, tmp_path: Path):
    forest, x = fitted
    path = tmp_path / "model.npz"
    save_forest(path, FlatForest.from_sklearn(forest), {"feature_set": "centroid", "note": "t"})
    loaded, header = load_forest(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), FlatForest.from_sklearn(forest).predict_proba(x))
    assert header["note"] == "t" and header["n_trees"] == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as data:  # nothing in the file needs unpickling
        assert all(data[key].dtype != object for key in data.files)


def corrupt_variants(good: Path, tmp_path: Path) -> dict[str, Path]:
    variants = {}
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:2000])
    variants["truncated"] = truncated
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00not a model" * 100)
    variants["garbage"] = garbage
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, header=np.array([{"format": "x"}], dtype=object))
    variants["pickled"] = pickled
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["header"].tobytes())
    bad_index = dict(arrays, children=arrays["children"] + 10**7)
    variants["bad_index"] = tmp_path / "bad_index.npz"
    np.savez(variants["bad_index"], **bad_index)
    wrong_format = dict(arrays, header=np.frombuffer(json.dumps({**header, "format": "other"}).encode(), np.uint8))
    variants["wrong_format"] = tmp_path / "wrong_format.npz"
    np.savez(variants["wrong_format"], **wrong_format)
    missing = {k: v for k, v in arrays.items() if k != "threshold"}
    variants["missing_array"] = tmp_path / "missing.npz"
    np.savez(variants["missing_array"], **missing)
    return variants


def test_corrupt_files_give_one_clear_error(fitted, tmp_path: Path):
    forest, _ = fitted
    good = tmp_path / "good.npz"
    save_forest(good, FlatForest.from_sklearn(forest), {})
    for name, path in corrupt_variants(good, tmp_path).items():
        with pytest.raises(ForestFileError, match=path.name):
            load_forest(path)
        assert name


def test_a_pickle_file_is_never_unpickled(tmp_path: Path):
    class Boom:
        def __reduce__(self):
            return (Path("/definitely/not").mkdir, ())

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("header.npy", pickle.dumps(Boom()))
    path = tmp_path / "evil.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ForestFileError, match=r"evil\.npz"):
        load_forest(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ForestFileError, match="no such file"):
        load_forest(tmp_path / "absent.npz")


def test_wrong_feature_count_is_rejected(fitted):
    forest, x = fitted
    with pytest.raises(ValueError, match="features"):
        FlatForest.from_sklearn(forest).predict_proba(x[:, :10])


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path: Path):
    from emotion_perception.core.atomic import atomic_path

    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        assert partial.suffix == ".png" and partial.parent == tmp_path
        partial.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]
    with atomic_path(target) as partial:
        partial.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_balanced_bagging_draws_by_weight_and_places_each_tree_s_classes_by_name():
    x, y = make_classification(n_samples=400, n_features=20, n_informative=8, n_classes=4, random_state=5)
    labels = np.array(["anger", "fear", "happy", "sadness"])[y]
    weights = np.where(labels == "sadness", 1e-6, 1.0)  # sadness almost never drawn
    forest = train_balanced_forest(x, labels, weights, n_estimators=30, bag_size=60, seed=2)
    assert forest.classes == ["anger", "fear", "happy", "sadness"] and forest.n_trees == 30
    proba = forest.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[:, 3].max() < 0.1  # trees that never saw sadness give it no votes
    again = train_balanced_forest(x, labels, weights, n_estimators=30, bag_size=60, seed=2)
    np.testing.assert_array_equal(again.predict_proba(x), proba)  # seeded
    fair = train_balanced_forest(x, labels, np.ones(len(x)), n_estimators=30, bag_size=400, seed=2)
    assert np.mean(fair.predict(x) == labels) > 0.9 and fair.predict_proba(x)[:, 3].max() > 0.5


def test_equal_balance_gives_a_small_dataset_the_share_of_a_big_one():
    rng = np.random.default_rng(0)
    # Two "datasets" whose class means differ: the big one says feature 0 > 0 is happy, the small one the reverse.
    big, small = rng.normal(size=(900, 3)), rng.normal(size=(100, 3))
    labels = np.concatenate([np.where(big[:, 0] > 0, "happy", "sad"), np.where(small[:, 0] > 0, "sad", "happy")])
    x = np.vstack([big, small])
    strata = np.array(["big"] * 900 + ["small"] * 100, dtype=object)
    settings = ForestSettings("centroid", n_estimators=20, mirror=False, n_jobs=1, covered=False)
    flat = ForestSettings(**{**vars(settings), "balance": "none"})
    balanced_model = settings.fit(x, None, labels, 0, strata=strata)
    bootstrap_model = flat.fit(x, None, labels, 0, strata=strata)
    small_rows = np.arange(900, 1000)
    def share(model):
        return np.mean(model.forest.predict(x[small_rows]) == labels[small_rows])
    assert share(balanced_model) > share(bootstrap_model)
    assert balanced_model.header["balance"] == "equal" and bootstrap_model.header["balance"] == "none"
    assert ForestSettings.like(balanced_model, n_jobs=1) == settings
