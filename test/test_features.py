"""Feature sets: shapes and invariance to translation and scale (and roll, for the eye-aligned ones)."""

import cv2
import numpy as np
import pytest
from face_images import astronaut_gray

from emotion_perception import features
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.features import appearance
from emotion_perception.features.sets import GEOMETRY_SETS, centroid_offsets


@pytest.fixture(scope="module")
def landmarks() -> np.ndarray:
    return FaceAnalyzer().analyze(astronaut_gray())[0].landmarks.astype(np.float64)


def similarity(points: np.ndarray, scale: float, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return scale * points @ rotation.T + np.asarray(shift)


@pytest.mark.parametrize("name", sorted(GEOMETRY_SETS))
def test_translation_and_scale_invariance(landmarks, name):
    base = features.compute(name, landmarks)
    moved = features.compute(name, similarity(landmarks, 3.7, 0.0, (-120.0, 415.5)))
    assert base.shape == (1, len(features.feature_names(name)))
    assert np.isfinite(base).all()
    np.testing.assert_allclose(moved, base, atol=1e-9)


@pytest.mark.parametrize("name", ["aligned", "aligned_distances", "named"])
def test_eye_frame_sets_are_also_roll_invariant(landmarks, name):
    base = features.compute(name, landmarks)
    rolled = features.compute(name, similarity(landmarks, 0.5, 17.0, (30.0, 5.0)))
    np.testing.assert_allclose(rolled, base, atol=1e-9)


def test_named_measurements_read_as_their_names(landmarks):
    names = features.feature_names("named")
    assert len(names) == 97 == len(set(names))
    row = dict(zip(names, features.compute("named", landmarks)[0]))
    opened = landmarks.copy()
    opened[57, 1] += 10  # drop the lower lip
    opened_row = dict(zip(names, features.compute("named", opened)[0]))
    assert opened_row["mouth opening"] > row["mouth opening"]
    assert opened_row["mouth width"] == pytest.approx(row["mouth width"])
    assert 0.2 < row["right eye openness ratio"] < 0.5  # open eyes are about a third as high as wide


def test_appearance_set_is_invariant_to_moving_and_scaling_the_picture(landmarks):
    gray = astronaut_gray()
    base = features.compute("named_hog", landmarks, [gray])
    assert base.shape == (1, 1861)
    # the same picture shifted by (40, 25) px and scaled 1.5x: the aligned crop, hence HOG, hardly changes
    matrix = np.float32([[1.5, 0, 40], [0, 1.5, 25]])
    moved_gray = cv2.warpAffine(gray, matrix, (900, 900), flags=cv2.INTER_LINEAR)
    moved = features.compute("named_hog", similarity(landmarks, 1.5, 0.0, (40.0, 25.0)), [moved_gray])
    np.testing.assert_allclose(moved[0, :97], base[0, :97], atol=1e-9)
    assert np.corrcoef(moved[0, 97:], base[0, 97:])[0, 1] > 0.95
    with pytest.raises(ValueError, match="grey image"):
        features.compute("named_hog", landmarks)


def test_mirrored_appearance_features_equal_those_of_the_flipped_picture(landmarks):
    gray = astronaut_gray()
    mirrored = features.compute_mirrored("named_hog", landmarks, [gray])
    flipped = np.ascontiguousarray(gray[:, ::-1])
    direct = features.compute("named_hog", features.mirror_landmarks(landmarks, gray.shape[1]), [flipped])
    np.testing.assert_allclose(mirrored, direct)
    assert not np.allclose(mirrored, features.compute("named_hog", landmarks, [gray]))


def test_numpy_hog_equals_scikit_image():
    from skimage.feature import hog as reference

    crop = astronaut_gray()[80:144, 170:234]
    ours = appearance.hog(crop)
    np.testing.assert_allclose(ours, reference(crop, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)),
                               atol=1e-6)


def test_centroid_offsets_follow_the_paper_definition(landmarks):
    vector = centroid_offsets(landmarks)[0].reshape(68, 2)
    np.testing.assert_allclose(vector.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.sqrt((vector**2).sum(axis=1).mean()), 1.0)
    offsets = landmarks - landmarks.mean(axis=0)
    # the direction of each offset is kept
    np.testing.assert_allclose(vector / np.linalg.norm(vector, axis=1, keepdims=True),
                               offsets / np.linalg.norm(offsets, axis=1, keepdims=True), atol=1e-12)


def test_features_change_with_expression_geometry(landmarks):
    opened = landmarks.copy()
    opened[57, 1] += 12  # lower lip drops: the mouth opens
    before = features.compute("aligned_distances", landmarks)
    assert not np.allclose(features.compute("aligned_distances", opened), before)


def test_mirroring_twice_is_identity_and_swaps_the_eyes(landmarks):
    mirrored = features.mirror_landmarks(landmarks, width=512)
    np.testing.assert_allclose(features.mirror_landmarks(mirrored, width=512), landmarks)
    np.testing.assert_allclose(mirrored[36, 0], 511 - landmarks[45, 0])
    assert sorted(features.MIRROR) == list(range(68))


def test_batches_and_bad_shapes(landmarks):
    batch = np.stack([landmarks, landmarks * 2])
    out = features.compute("centroid", batch)
    assert out.shape == (2, 136)
    np.testing.assert_allclose(out[0], out[1])
    with pytest.raises(ValueError, match="68, 2"):
        features.compute("centroid", np.zeros((5, 2)))
    with pytest.raises(ValueError, match="unknown feature set"):
        features.compute("nope", landmarks)


@pytest.mark.parametrize("name", ["centroid", "named_hog"])
def test_batched_mirror_features_equal_the_separate_computations(landmarks, name):
    gray = astronaut_gray()
    grays = [gray] if features.needs_image(name) else None
    rows, mirrored = features.compute_with_mirrored(name, landmarks, grays)
    np.testing.assert_allclose(rows, features.compute(name, landmarks, grays))
    np.testing.assert_allclose(mirrored, features.compute_mirrored(name, landmarks, grays))
