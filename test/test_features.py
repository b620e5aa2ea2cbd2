"""Feature sets: shapes and invariance to translation and scale (and roll, for the eye-aligned ones)."""

import cv2
import numpy as np
import pytest
from face_images import astronaut_gray

from emotion_perception import features
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.features import appearance
from emotion_perception.features.named import MEASUREMENTS, named_measurements
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


# The jaw drops: how far each landmark below the mouth corners moves, as a share of the lower lip's drop. The
# lower lip (outer 55-59, inner 65-67) moves down with the chin; the jaw line (5-11) follows less towards its
# ends; the mouth corners (48, 54, 60, 64), the upper lip and everything above stay.
JAW_DROP = {55: 0.7, 56: 1.0, 57: 1.0, 58: 1.0, 59: 0.7, 65: 1.0, 66: 1.0, 67: 1.0,
            5: 0.4, 6: 0.7, 7: 0.9, 8: 1.0, 9: 0.9, 10: 0.7, 11: 0.4}
DROPS_PX = (0.0, 2.0, 4.0, 8.0, 12.0, 16.0)
OPENING = ("mouth opening", "inner mouth opening", "mouth opening ratio", "inner mouth opening ratio",
           "right lip height", "left lip height", "right inner lip gap", "left inner lip gap",
           "lower lip height", "lower inner lip height", "chin height", "nose to chin", "face height")
# not about the mouth, or about what the jaw does not move
UNRELATED = ("right eye opening", "left eye opening", "right eye openness ratio", "left eye openness ratio",
             "right eye width", "left eye width", "brow point 19 height", "right brow to lower lid", "nose length",
             "nose width", "mouth width", "inner mouth width", "upper lip height", "upper inner lip height",
             "upper lip thickness", "nose to upper lip", "right mouth corner height", "face width")
# the lower lip and the chin move as one
RIGID = ("lower lip thickness", "chin to lower lip", "chin to inner lower lip")


def measurement_indices() -> dict[str, set[int]]:
    """Each named measurement -> the landmarks it depends on (through the columns a ratio divides)."""
    indices = {name: set(args) for name, kind, args in MEASUREMENTS if kind != "ratio"}
    ratios = {name: set().union(*(indices[a] for a in args)) for name, kind, args in MEASUREMENTS if kind == "ratio"}
    return {name: {**indices, **ratios}[name] for name, _, _ in MEASUREMENTS}


def open_mouth(landmarks: np.ndarray, drop_px: float) -> np.ndarray:
    """The face with its jaw dropped by `drop_px` pixels at the lower lip, straight down in the face's own frame
    (perpendicular to the line between the eye centres), so also for a rolled face."""
    axis = landmarks[42:48].mean(axis=0) - landmarks[36:42].mean(axis=0)
    down = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
    opened = landmarks.copy()
    for k, share in JAW_DROP.items():
        opened[k] += share * drop_px * down
    return opened


@pytest.mark.parametrize("roll", [0.0, 17.0])
@pytest.mark.parametrize("how", ["named_measurements", "features.compute"])
def test_mouth_opening_measurements_grow_as_the_jaw_drops_and_nothing_else_moves(landmarks, how, roll):
    face = similarity(landmarks, 1.0, roll, (0.0, 0.0))
    faces = np.stack([open_mouth(face, drop) for drop in DROPS_PX])
    if how == "named_measurements":
        names, rows = named_measurements(faces)
    else:
        names, rows = features.feature_names("named"), features.compute("named", faces)
    assert rows.shape == (len(DROPS_PX), 97)
    column = {name: rows[:, k] for k, name in enumerate(names)}
    eye_distance = np.linalg.norm(face[42:48].mean(axis=0) - face[36:42].mean(axis=0))
    drops = np.asarray(DROPS_PX) / eye_distance  # in inter-ocular units
    for name in OPENING:
        assert (np.diff(column[name]) > 0).all(), (name, column[name])
    # in inter-ocular units: the lower lip's height grows by exactly the drop, the (nearly vertical) openings by
    # about as much, and their ratios to the unchanged mouth width with them
    np.testing.assert_allclose(column["lower lip height"] - column["lower lip height"][0], drops, atol=1e-9)
    for name in ("mouth opening", "inner mouth opening"):
        np.testing.assert_allclose(column[name] - column[name][0], drops, rtol=0.05, err_msg=name)
        np.testing.assert_allclose(column[f"{name} ratio"], column[name] / column["mouth width"], rtol=1e-12)
    for side in ("right", "left"):  # the lower lip sinks further below the mouth corners, by the drop
        below = column[f"{side} corner below lower lip"]
        np.testing.assert_allclose(below[0] - below, drops, atol=1e-9, err_msg=side)
    for name in (*UNRELATED, *RIGID):
        np.testing.assert_allclose(column[name], column[name][0], atol=1e-9, err_msg=name)
    # and so every measurement of landmarks the jaw leaves where they are
    moved = set(JAW_DROP)
    untouched = [name for name, uses in measurement_indices().items() if not uses & moved]
    assert set(UNRELATED) <= set(untouched) and len(untouched) > 50
    for name in untouched:
        np.testing.assert_allclose(column[name], column[name][0], atol=1e-9, err_msg=name)


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
