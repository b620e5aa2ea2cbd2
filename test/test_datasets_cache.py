"""Dataset folders with and without manifests, and the landmark cache that lets re-runs skip dlib."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_images import astronaut_gray, face_crop

from emotion_perception.core.errors import DatasetError
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.data.datasets import concat, load_folder
from emotion_perception.data.landmark_cache import LandmarkCache, extract_dataset


def make_folder(root: Path, manifest: bool) -> Path:
    rows = []
    for label, shift in (("happy", 0), ("happy", 6), ("surprise", 12)):
        (root / label).mkdir(parents=True, exist_ok=True)
        name = f"{label}/img{shift}.png"
        cv2.imwrite(str(root / name), np.roll(astronaut_gray(), shift, axis=1))
        rows.append({"path": name, "label": label, "subject": f"S{shift}"})
    (root / "happy" / "notes.txt").write_text("not an image")
    if manifest:
        with (root / "manifest.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "subject"])
            writer.writeheader()
            writer.writerows(rows)
    return root


def test_folder_without_manifest_is_scanned_by_class(tmp_path: Path):
    data = load_folder(make_folder(tmp_path / "plain", manifest=False))
    assert sorted(data.labels) == ["happy", "happy", "surprise"]
    assert data.subjects is None
    assert len(set(data.groups())) == 3


def test_manifest_gives_subjects_and_classes_can_be_filtered(tmp_path: Path):
    root = make_folder(tmp_path / "m", manifest=True)
    data = load_folder(root, labels=["happy"])
    assert list(data.subjects) == ["S0", "S6"]
    other = load_folder(make_folder(tmp_path / "m2", manifest=True))
    both = concat([data, other])
    assert len(both) == 5 and list(both.groups()).count("S0") == 2  # same subject id in both sets


def test_bad_folders_are_reported(tmp_path: Path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no labelled images"):
        load_folder(tmp_path / "empty")
    (tmp_path / "odd" / "grumpy").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "odd" / "grumpy" / "a.png"), face_crop())
    with pytest.raises(DatasetError, match="unknown emotion label"):
        load_folder(tmp_path / "odd")
    root = make_folder(tmp_path / "gone", manifest=True)
    (root / "happy" / "img0.png").unlink()
    with pytest.raises(DatasetError, match="missing on disk"):
        load_folder(root)


class CountingAnalyzer(FaceAnalyzer):
    """The real analyzer, counting how often dlib runs."""

    calls = 0

    def analyze(self, gray):
        CountingAnalyzer.calls += 1
        return super().analyze(gray)


def test_cache_skips_dlib_on_the_second_run_and_keys_on_content(tmp_path: Path):
    root = make_folder(tmp_path / "c", manifest=False)
    cache = LandmarkCache(tmp_path / "cache.sqlite")
    analyzer = CountingAnalyzer()
    first = extract_dataset(load_folder(root), analyzer, cache, progress=False)
    assert CountingAnalyzer.calls == 3 and first.found.all()
    second = extract_dataset(load_folder(root), analyzer, cache, progress=False)
    assert CountingAnalyzer.calls == 3
    np.testing.assert_array_equal(first.landmarks, second.landmarks)
    # a changed file is re-analysed; so is everything under other detector settings
    cv2.imwrite(str(root / "surprise" / "img12.png"), np.full((200, 200), 90, np.uint8))
    third = extract_dataset(load_folder(root), analyzer, cache, progress=False)
    assert CountingAnalyzer.calls == 4 and not third.found[2]
    analyzer.detector.upsample = 1
    extract_dataset(load_folder(root), analyzer, cache, progress=False)
    assert CountingAnalyzer.calls == 7


def test_unreadable_images_are_reported_not_fatal(tmp_path: Path):
    root = make_folder(tmp_path / "u", manifest=False)
    (root / "happy" / "img0.png").write_bytes(b"broken")
    result = extract_dataset(load_folder(root), FaceAnalyzer(), None, progress=False)
    assert not result.found[0] and result.found[1:].all()
    assert len(result.errors) == 1 and "img0.png" in result.errors[0]
