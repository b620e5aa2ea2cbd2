"""The visibility model and the tamper checks: the shipped model on the public-domain astronaut photo, clean and
covered; training on a shared dataset where it is present."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from face_images import astronaut_gray, face_crop, shared_dataset

from emotion_perception.attacks import registry
from emotion_perception.attacks.registry import AttackInputs
from emotion_perception.cli import main
from emotion_perception.core import occlusion
from emotion_perception.core.errors import ForestFileError
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.data.datasets import load_datasets
from emotion_perception.data.face_data import with_landmarks
from emotion_perception.experiments.visibility import fit_visibility, occluded_examples
from emotion_perception.models.forest import load_forest
from emotion_perception.models.landmark_model import default_model_path
from emotion_perception.models.tamper import ARTEFACT_REASONS, TamperCheck, lattice_peak, pixel_statistics
from emotion_perception.models.visibility import (
    CLASSES,
    REGIONS,
    WINDOWS,
    VisibilityModel,
    default_visibility_path,
    region_statistics,
)


@pytest.fixture(scope="module")
def check() -> TamperCheck:
    return TamperCheck.load()


@pytest.fixture(scope="module")
def scene():
    gray = astronaut_gray()
    faces = FaceAnalyzer().analyze(gray)
    assert len(faces) == 1
    return gray, faces


def test_region_statistics_are_finite_and_see_a_flat_patch():
    crop = face_crop()
    clean = region_statistics(crop)
    covered = crop.copy()
    covered[27:47, 6:42] = 0
    boxed = region_statistics(covered)
    assert clean.shape == boxed.shape == (8 * len(WINDOWS) + 2,) and np.isfinite(clean).all()
    lower_flat = 8 + 2  # the lower region's flat share
    assert boxed[lower_flat] > 0.9 > clean[lower_flat]


def test_the_clean_astronaut_is_not_flagged(check, scene):
    gray, faces = scene
    [assessment] = check.assess(gray, faces)
    assert not assessment.flagged and assessment.reasons == []
    assert set(assessment.occlusion) == set(REGIONS)
    entry = assessment.to_json()
    assert entry["tampered"]["flag"] is False and json.dumps(entry)


@pytest.mark.parametrize(("kind", "region"), [("surgical_mask", "lower"), ("lower_box", "lower"),
                                              ("eye_boxes", "upper")])
def test_covered_regions_are_flagged_by_name(check, scene, kind, region):
    gray, faces = scene
    covered = occlusion.occlude(gray, faces[0].landmarks, kind, np.random.default_rng(0), fill=0)
    [assessment] = check.assess(covered, faces)
    assert assessment.flagged
    assert check.visibility.occluded(assessment.occlusion) == [region]
    assert any(region in reason for reason in assessment.reasons)


def test_scaling_camouflage_is_flagged_as_pixel_artefacts(check, scene):
    gray, faces = scene
    target = cv2.resize(np.ascontiguousarray(np.rot90(gray)), (128, 128), interpolation=cv2.INTER_AREA)  # another face
    camouflaged = registry.apply("scaling", gray, {"scale_width": 128, "scale_height": 128},
                                 AttackInputs(target=target))
    clean, attacked = pixel_statistics(gray, faces[0]), pixel_statistics(camouflaged, faces[0])
    assert attacked["lattice"] > check.artefact_thresholds["lattice"] > clean["lattice"]
    [assessment] = check.assess(camouflaged, faces)
    assert assessment.flagged and any("image-scaling camouflage" in reason for reason in assessment.reasons)


def test_a_flat_scaling_target_is_seen_by_its_lattice(check, scene):
    gray, faces = scene
    flat = np.full((128, 128), 128, np.uint8)  # the outlier ratio alone missed this camouflage (1.6 < 1.96)
    camouflaged = registry.apply("scaling", gray, {"scale_width": 128, "scale_height": 128}, AttackInputs(target=flat))
    [assessment] = check.assess(camouflaged, faces)
    assert assessment.artefacts_flagged and assessment.reasons == [ARTEFACT_REASONS["lattice"]]


def test_lattice_peak_finds_a_periodic_profile_and_not_a_random_one():
    rng = np.random.default_rng(0)
    noise = rng.normal(10.0, 2.0, 192)
    lattice = noise + 20.0 * (np.arange(192) % 4 >= 2)  # two altered pixels in every four, as a 4x linear resize reads
    assert lattice_peak(lattice.astype(np.float32)) > 100 > 20 > lattice_peak(noise.astype(np.float32))


def test_gaussian_noise_is_not_flagged_and_impulse_noise_is(check, scene):
    gray, faces = scene
    assert not check.assess(registry.apply("gaussian", gray, {"noise_sigma": 0.05}, AttackInputs()), faces)[0].flagged
    [assessment] = check.assess(registry.apply("salt_pepper", gray, {"noise_amount": 0.05}, AttackInputs()), faces)
    assert assessment.artefacts_flagged and ARTEFACT_REASONS["noise"] in assessment.reasons


def test_a_visibility_model_without_pixel_thresholds_is_refused_with_one_line(tmp_path, capsys):
    model = VisibilityModel.load()
    model.header = {k: v for k, v in model.header.items() if k != "artefact_thresholds"}
    with pytest.raises(ForestFileError, match="retrain it with `emotion-perception train visibility`"):
        TamperCheck(model)
    old = tmp_path / "old_visibility.npz"
    model.save(old)
    root = poisoned_training_folder(tmp_path / "data", boxed_happy=0)
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(root), "--screen", "--visibility-model", str(old), "--n-estimators", "5",
                 "--quiet", "--no-cache", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("retrain it with `emotion-perception train visibility`") and str(old) in err[-1]
    assert "Traceback" not in "\n".join(err) and not out.exists()


def test_a_forest_file_is_not_taken_for_a_visibility_model():
    with pytest.raises(ForestFileError, match="no region thresholds in its header"):
        TamperCheck.load(str(default_model_path()))


def test_the_shipped_model_says_how_it_was_made():
    forest, header = load_forest(default_visibility_path())
    assert sorted(forest.classes) == sorted(CLASSES)
    assert 0 < header["false_positive_rate"] <= 0.02 and header["n_clean_held_out"] > 1000
    assert 0 < header["noise_false_positive_rate"] <= header["false_positive_rate"] and header["lattice_margin"] >= 1
    assert set(header["thresholds"]) == set(REGIONS)
    assert set(header["artefact_thresholds"]) == set(ARTEFACT_REASONS)
    assert all(value > 1.0 for value in header["artefact_thresholds"].values())


def test_occluded_examples_cover_every_class():
    crops = np.stack([face_crop()] * 30)
    gray = astronaut_gray()
    faces = FaceAnalyzer().analyze(gray)
    x0, y0 = 165, 70
    scale = 48 / 110
    points = (faces[0].landmarks - [x0, y0]) * scale / 48
    rows, classes = occluded_examples(crops, np.stack([points] * 30), np.random.default_rng(1))
    assert rows.shape == (60, 8 * len(WINDOWS) + 2) and (classes == "none").sum() == 30
    assert set(classes) == set(CLASSES)


def test_fit_visibility_on_jaffe_sets_thresholds_on_held_out_clean_faces(tmp_path):
    data = with_landmarks(load_datasets([str(shared_dataset("jaffe"))]), progress=False)
    model = fit_visibility([data], false_positive_rate=0.02, trees=10, depth=8)
    assert model.header["n_clean_held_out"] > 20 and set(model.thresholds) == set(REGIONS)
    model.save(tmp_path / "v.npz")
    again = VisibilityModel.load(tmp_path / "v.npz")
    crops = np.stack([face_crop()] * 2)
    np.testing.assert_allclose(again.scores(crops), model.scores(crops))


def test_train_visibility_cli_writes_a_loadable_model(tmp_path):
    out = tmp_path / "vis.npz"
    assert main(["train", "visibility", "--data", str(shared_dataset("jaffe")), "--false-positive-rate", "0.02",
                 "--quiet", "--out", str(out)]) == 0
    model = VisibilityModel.load(out)
    assert model.header["false_positive_rate"] == 0.02 and "train visibility" in model.header["recipe"]
    assert model.header["noise_false_positive_rate"] == 0.001


def poisoned_training_folder(root, boxed_happy: int):
    """Five happy and five neutral astronauts (brightness varied), eye boxes on the first `boxed_happy` happy ones."""
    face = astronaut_gray()
    [found] = FaceAnalyzer().analyze(face)
    rows = ["path,label,subject"]
    for label, shift in (("happy", 0), ("neutral", 25)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for k in range(5):
            image = np.clip(face.astype(int) + shift - 8 * k, 0, 255).astype(np.uint8)
            if label == "happy" and k < boxed_happy:  # Type A: eye boxes on images of one class
                image = occlusion.occlude(image, found.landmarks, "eye_boxes", np.random.default_rng(k), fill=0)
            cv2.imwrite(str(root / label / f"{k}.png"), image)
            rows.append(f"{label}/{k}.png,{label},s{k}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_train_screen_repairs_the_eye_boxed_faces_and_says_how_many(tmp_path, capsys):
    root = poisoned_training_folder(tmp_path / "data", boxed_happy=2)
    out = tmp_path / "screened.npz"
    assert main(["train", "--data", str(root), "--screen", "--n-estimators", "5", "--quiet", "--no-cache",
                 "--out", str(out)]) == 0
    assert ("screening: 2 of 10 training faces flagged, 0 left out, 2 kept with their covered regions' features "
            "replaced") in capsys.readouterr().out
    header = load_forest(out)[1]
    assert header["screened_out"] == 0 and header["train_counts"] == {"happy": 5, "neutral": 5}
    assert header["screening"] == {"flagged": 2, "left_out": 0, "repaired": 2, "upper_covered": 2,
                                   "lower_covered": 0}
    # every happy image boxed (Type A): the class is still learnt, from what the boxes leave in view
    poisoned_training_folder(root, boxed_happy=5)
    assert main(["train", "--data", str(root), "--screen", "--n-estimators", "5", "--quiet", "--no-cache",
                 "--out", str(out)]) == 0
    assert re.search(r"[345] kept with their covered regions' features replaced", capsys.readouterr().out)


def test_train_screen_refuses_a_class_whose_faces_it_would_mostly_leave_out(tmp_path, capsys):
    root = poisoned_training_folder(tmp_path / "data", boxed_happy=0)
    for k in range(4):  # salt-and-pepper pixels on four happy images: pixel artefacts, left out
        path = root / "happy" / f"{k}.png"
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        spots = np.random.default_rng(k).random(image.shape) < 0.02
        image[spots] = np.where(np.random.default_rng(k + 10).random(spots.sum()) < 0.5, 0, 255)
        cv2.imwrite(str(path), image)
    refused = tmp_path / "refused.npz"
    assert main(["train", "--data", str(root), "--screen", "--n-estimators", "5", "--quiet", "--no-cache",
                 "--out", str(refused)]) == 2
    assert re.search(r"most training faces of a class \(happy 4 of 5\)", capsys.readouterr().err)
    assert not refused.exists()


def test_train_cnn_screen_leaves_out_every_flagged_face_and_refuses_a_poisoned_class(tmp_path, capsys):
    root = poisoned_training_folder(tmp_path / "data", boxed_happy=5)
    refused = tmp_path / "refused.pt"
    assert main(["train", "cnn", "--data", str(root), "--screen", "--epochs", "1", "--quiet", "--no-cache",
                 "--out", str(refused)]) == 2
    assert re.search(r"most training faces of a class \(happy [345] of 5\)", capsys.readouterr().err)
    assert not refused.exists()
