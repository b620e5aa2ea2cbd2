"""The covered-face forest: a second forest for faces whose lower part is covered, chosen per face by the
visibility check; saved in the same file; trained by `train forest` on occluded copies re-read by dlib."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from face_images import astronaut_gray, shared_dataset

from emotion_perception.cli import main
from emotion_perception.core import occlusion
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.pipeline import FaceAnalyzer, FrameStep, classify_camera_frame
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Face
from emotion_perception.data.datasets import load_datasets
from emotion_perception.data.face_data import occluded_rows, with_landmarks
from emotion_perception.experiments.crossval import ForestRecipe
from emotion_perception.models.forest import load_forests
from emotion_perception.models.landmark_model import EmotionModel, ForestSettings
from emotion_perception.models.tamper import TamperCheck
from emotion_perception.models.visibility import VisibilityModel


def two_part_model(n_features: int = 4) -> tuple[EmotionModel, np.ndarray, np.ndarray]:
    """A model whose covered forest learnt the opposite of its main forest, and its training rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, n_features))
    labels = np.where(x[:, 0] > 0, "happy", "sadness")
    flipped = np.where(labels == "happy", "sadness", "happy")
    settings = ForestSettings("centroid", n_estimators=15, mirror=False, n_jobs=1, balance="none",
                              covered_estimators=7)
    # The covered forest trains on the clean rows and the occluded ones: many flipped copies outvote the clean.
    occluded = [(x, None, flipped, None)] * 5
    return settings.fit(x, None, labels, 0, occluded=occluded), x, labels


def test_rows_marked_covered_are_scored_by_the_covered_forest():
    model, x, labels = two_part_model()
    covered = np.arange(len(x)) % 2 == 0
    main_only = model.predict_features(x)
    routed = model.predict_features(x, covered=covered)
    np.testing.assert_array_equal(routed[~covered], main_only[~covered])
    assert np.mean(np.array(model.labels)[main_only.argmax(1)] == labels) > 0.95
    assert np.mean(np.array(model.labels)[routed[covered].argmax(1)] != labels[covered]) > 0.9
    assert model.header["covered"]["n_train"] == 6 * len(x)


def test_the_covered_forest_is_saved_in_the_same_file_and_read_back(tmp_path):
    model, x, _ = two_part_model()
    model.save(tmp_path / "m.npz")
    again = EmotionModel.load(tmp_path / "m.npz")
    covered = np.ones(len(x), bool)
    np.testing.assert_array_equal(again.predict_features(x, covered=covered),
                                  model.predict_features(x, covered=covered))
    _, extra, header = load_forests(tmp_path / "m.npz")
    assert set(extra) == {"covered"} and header["extra_forests"]["covered"]["n_trees"] == 7
    assert again.forest.n_trees == 15 and again.header["covered"]["n_estimators"] == 7
    like = ForestSettings.like(again, n_jobs=1)
    assert like.covered and like.n_estimators == 15 and like.covered_estimators == 7


def test_a_model_without_a_covered_forest_ignores_the_flags(tmp_path):
    model, x, _ = two_part_model()
    model.covered = None
    model.save(tmp_path / "plain.npz")
    plain = EmotionModel.load(tmp_path / "plain.npz")
    assert plain.covered is None and "extra_forests" not in load_forests(tmp_path / "plain.npz")[2]
    np.testing.assert_array_equal(plain.predict_features(x, covered=np.ones(len(x), bool)), plain.predict_features(x))
    assert plain.lower_covered(np.zeros((8, 8), np.uint8), []) is None


def test_a_covered_forest_cannot_be_trained_without_occluded_rows():
    with pytest.raises(ValueError, match="occluded faces"):
        ForestSettings("centroid", n_estimators=2, mirror=False, n_jobs=1).fit(np.zeros((4, 2)), None,
                                                                                np.array(list("abab")), 0)


def test_the_shipped_model_routes_a_face_with_a_masked_lower_half():
    model = EmotionModel.load()
    assert model.covered is not None, "the shipped forest has a covered-face part"
    gray = astronaut_gray()
    faces = FaceAnalyzer().analyze(gray)
    masked = occlusion.occlude(gray, faces[0].landmarks, "lower_box", np.random.default_rng(0), fill=0)
    masked_faces = FaceAnalyzer().analyze(masked)
    assert len(masked_faces) == 1
    assert list(model.lower_covered(gray, faces)) == [False]
    assert list(model.lower_covered(masked, masked_faces)) == [True]
    landmarks = np.stack([masked_faces[0].landmarks])
    routed = model.predict_proba(masked, masked_faces)
    np.testing.assert_allclose(routed, model.predict_landmarks(landmarks, [masked], np.array([True])))
    assert not np.allclose(routed, model.predict_landmarks(landmarks, [masked]))
    np.testing.assert_allclose(model.predict_proba(gray, faces),
                               model.predict_landmarks(np.stack([faces[0].landmarks]), [gray]))


class CountingVisibility:
    """The shipped visibility model, counting the faces it reads."""

    def __init__(self, model: VisibilityModel) -> None:
        self.model, self.faces_read = model, 0

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def assess(self, gray, faces):
        self.faces_read += len(faces)
        return self.model.assess(gray, faces)


def node_step(model: EmotionModel, gray: np.ndarray, max_width: int, check: TamperCheck | None) -> FrameStep:
    tracker = FaceTracker(FaceDetector(min_size=1, whole_image_fallback=False), LandmarkPredictor())
    return classify_camera_frame(tracker, model, gray, max_width, check)


def test_the_node_step_routes_on_the_tamper_check_without_reading_the_face_twice():
    model = EmotionModel.load()
    model.visibility = counting = CountingVisibility(model.visibility)
    gray = astronaut_gray()
    face = FaceAnalyzer().analyze(gray)[0]
    masked = occlusion.occlude(gray, face.landmarks, "lower_box", np.random.default_rng(0), fill=0)
    alone = node_step(model, masked, 1280, None)
    assert alone.checks is None and counting.faces_read == 1  # the model checks the face itself
    check = TamperCheck(VisibilityModel.load())
    checked = node_step(model, masked, 1280, check)
    assert counting.faces_read == 1 and len(checked.checks) == 1 and "lower" in checked.checks[0].covered
    assert checked.predictions[0].scores == alone.predictions[0].scores  # routed to the covered forest both ways
    # a wide frame: classified downscaled, checked in the frame's own pixels, boxes back in them
    wide = cv2.resize(masked, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)
    step = node_step(model, wide, 512, check)
    assert counting.faces_read == 1 and "lower" in step.checks[0].covered
    assert step.checks[0].occlusion == check.assess(wide, [Face(step.predictions[0].box,
                                                                step.predictions[0].landmarks)])[0].occlusion
    assert step.predictions[0].box.width == pytest.approx(2 * checked.predictions[0].box.width, rel=0.1)
    assert node_step(model, np.full((120, 160), 90, np.uint8), 1280, check).checks == []


def test_occluded_rows_reread_every_found_face_under_each_lower_occluder():
    data = with_landmarks(load_datasets([str(shared_dataset("jaffe"))]), progress=False)
    per_kind = occluded_rows(data, "named", True, FaceAnalyzer(), None, seed=0, progress=False)
    assert len(per_kind) == len(occlusion.LOWER_KINDS)
    found = data.extracted.found
    clean = data.feature_rows("named", True)
    again = occluded_rows(data, "named", True, FaceAnalyzer(), None, seed=0, progress=False)
    for rows, rows_again in zip(per_kind, again):
        assert rows.found[found].mean() > 0.6 and not rows.found[~found].any()
        both = rows.found & found
        assert not np.allclose(rows.x[both], clean.x[both])  # dlib read other landmarks under the occluders
        np.testing.assert_array_equal(rows_again.x[both], rows.x[both])  # seeded per image and kind


def test_train_forest_cli_writes_the_covered_forest_and_no_covered_leaves_it_out(tmp_path, capsys):
    jaffe = str(shared_dataset("jaffe"))
    out, plain = tmp_path / "f.npz", tmp_path / "p.npz"
    common = ["--data", jaffe, "--feature-set", "named", "--n-estimators", "10", "--quiet", "--no-cache"]
    assert main(["train", "forest", *common, "--covered-estimators", "4", "--out", str(out)]) == 0
    assert main(["train", "forest", *common, "--no-covered", "--out", str(plain)]) == 0
    assert EmotionModel.load(out).covered.n_trees == 4 and EmotionModel.load(plain).covered is None
    assert EmotionModel.load(out).header["covered"]["occluders"] == list(occlusion.LOWER_KINDS)


def test_a_train_only_recipe_skips_the_routing_check_and_refuses_to_score():
    data = with_landmarks(load_datasets([str(shared_dataset("jaffe"))]), progress=False)
    settings = ForestSettings("named", n_estimators=5, n_jobs=1, covered_estimators=5)
    occluded = occluded_rows(data, "named", True, FaceAnalyzer(), None, progress=False)
    trainer = ForestRecipe(settings, data, occluded, scores=False)
    assert trainer.covered is None
    index = np.flatnonzero(data.extracted.found)
    model = trainer.fit(index, np.asarray(data.dataset.labels), [], data.dataset.groups(), 0)
    with pytest.raises(ValueError, match="train only"):
        trainer.proba(model, index)
    scorer = ForestRecipe(settings, data, occluded)
    assert scorer.covered is not None and scorer.proba(model, index).shape == (len(index), len(model.labels))
