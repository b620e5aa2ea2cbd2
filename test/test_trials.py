"""Robustness trials: statistics against hand values, Type A poisoning, the black-box attack, resuming, and the
`trials` CLI end to end on freely licensed astronaut-derived faces (and on CK+48 where present)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_images import astronaut_gray, shared_dataset

from emotion_perception.attacks.black_box import square_attack
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.data.datasets import load_folder
from emotion_perception.data.landmark_cache import LandmarkCache
from emotion_perception.experiments.evaluation import mean_ci95
from emotion_perception.experiments.trials import TrialData, TrialSettings, run_trials
from emotion_perception.experiments.trials_report import paired_test, summarize, welch_test
from emotion_perception.features import DEFAULT_FEATURE_SET

REQUIRED_CELL_KEYS = {"accuracy_mean", "ci95", "per_class", "seconds"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_perception", *args], capture_output=True, text=True,
                          timeout=900)


def make_faces(root: Path, per_class: int = 5) -> Path:
    """64x64 grey crops of the astronaut's face (public domain), shifted and scaled; 'surprise' ones stretched
    vertically so that the two classes differ in geometry."""
    face = astronaut_gray()[40:220, 140:300]
    for label, stretch in (("happy", 1.0), ("surprise", 1.25)):
        (root / label).mkdir(parents=True)
        for k in range(per_class):
            scaled = cv2.resize(face, None, fx=1.0 - 0.04 * k, fy=(1.0 - 0.04 * k) * stretch)
            h, w = scaled.shape
            crop = scaled[(h - 150) // 2 + k : (h - 150) // 2 + k + 150, (w - 150) // 2 : (w - 150) // 2 + 150]
            cv2.imwrite(str(root / label / f"f{k}.png"), cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA))
    return root


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return make_faces(tmp_path_factory.mktemp("trial_faces"))


# ------------------------------------------------------------------------------------------ statistics


def test_confidence_interval_matches_the_t_table():
    mean, half = mean_ci95([1.0, 2.0, 3.0])  # sd 1, n 3, t(0.975, 2) = 4.302653
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), abs=1e-5)


def test_welch_test_matches_hand_values():
    result = welch_test([1, 2, 3, 4], [2, 4, 6, 8])
    # variances 5/3 and 20/3 over n=4: se^2 = 25/12, t = -2.5/sqrt(25/12) = -sqrt(3), df = (25/12)^2 / ((5/12)^2/3 +
    # (20/12)^2/3) = 75/17
    assert result["t"] == pytest.approx(-math.sqrt(3))
    assert result["df"] == pytest.approx(75 / 17)
    # two values each, variances 2 and 2: se^2 = 2, t = 1/sqrt(2), df = 2^2 / (1 + 1) = 2; with two degrees of
    # freedom P(|T| > t) = 1 - t / sqrt(2 + t^2) = 1 - 1/sqrt(5)
    small = welch_test([0, 2], [-1, 1])
    assert small["t"] == pytest.approx(1 / math.sqrt(2)) and small["df"] == pytest.approx(2.0)
    assert small["p"] == pytest.approx(1 - 1 / math.sqrt(5))
    assert welch_test([0.5, 0.5], [0.5, 0.5])["p"] == 1.0 and welch_test([0.9, 0.9], [0.5, 0.5])["p"] == 0.0


def test_paired_test_matches_hand_values():
    result = paired_test([2, 5], [1, 2])  # differences 1, 3: mean 2, sd sqrt(2), se 1, t = 2, df = 1
    assert result["t"] == pytest.approx(2.0) and result["df"] == 1
    assert result["p"] == pytest.approx(1 - 2 * math.atan(2) / math.pi)  # Cauchy: P(|T| > 2)
    assert paired_test([0.8, 0.7, 0.9], [0.8, 0.7, 0.9])["p"] == 1.0
    assert math.isnan(paired_test([0.8], [0.7])["p"])


# ------------------------------------------------------------------------------------------ attacks


def test_type_a_poisoning_only_touches_the_poisoned_class(faces, tmp_path):
    dataset = load_folder(faces)
    data = TrialData(dataset, FaceAnalyzer(), None, TrialSettings(), tmp_path, progress=False)
    clean, boxed = data.image_set("clean"), data.image_set("eye_boxes")
    assert boxed.applied.all()
    for original, covered in zip(clean.grays, boxed.grays):
        assert (covered != original).any() and (covered == 0).sum() > (original == 0).sum()
    target = "surprise"
    poisoned = data.poisoned_rows("centroid", target)
    clean_rows = data.rows("clean", "centroid")
    is_target = data.labels == target
    np.testing.assert_array_equal(poisoned.x[~is_target], clean_rows.x[~is_target])
    np.testing.assert_array_equal(poisoned.x_mirrored[~is_target], clean_rows.x_mirrored[~is_target])
    np.testing.assert_array_equal(poisoned.x[is_target], data.rows("eye_boxes", "centroid").x[is_target])
    assert not np.array_equal(poisoned.x[is_target], clean_rows.x[is_target])  # boxes move the landmarks
    crops = data.poisoned_crops(target)
    clean_crops = data.crops("clean", 48, 0.1)
    np.testing.assert_array_equal(crops.crops[~is_target], clean_crops.crops[~is_target])
    assert all((crops.crops[i] != clean_crops.crops[i]).any() for i in np.flatnonzero(is_target))
    assert np.isnan(crops.landmarks[is_target]).all()  # the poisoned crops get no drawn occluders


def test_the_cnn_crops_carry_the_clean_landmarks_that_place_its_occluders(faces, tmp_path):
    """Trials train the CNN as `train cnn` does, with occluders drawn from each crop's landmarks: the clean crops
    carry the clean landmarks in crop coordinates (eyes above the mouth, inside the crop); attacked crops none."""
    data = TrialData(load_folder(faces), FaceAnalyzer(), None, TrialSettings(), tmp_path, progress=False)
    clean = data.crops("clean", 48, 0.1)
    assert clean.found.all() and np.isfinite(clean.landmarks).all()
    eyes, mouth = clean.landmarks[:, 36:48].mean(axis=1), clean.landmarks[:, 48:68].mean(axis=1)
    assert ((eyes > 0.1) & (eyes < 0.9)).all() and (eyes[:, 1] + 0.15 < mouth[:, 1]).all()
    assert np.isnan(data.crops("jaw_box", 48, 0.1).landmarks).all()


def test_square_attack_stays_in_budget_and_fools_a_brightness_classifier():
    def score(gray: np.ndarray) -> np.ndarray:
        bright = 1 / (1 + math.exp(-(gray.mean() - 128.0)))  # class 1 = brighter than mid-grey
        return np.array([1 - bright, bright])

    image = np.full((32, 32), 130, np.uint8)  # class 1 by a margin of 2 grey levels
    # 5 grey levels allowed; the mean must fall by 2, so over 70% of the pixels must go down
    for seed in range(5):
        result = square_attack(score, image, label=1, epsilon=0.02, queries=1000, seed=seed)
        change = np.abs(result.image.astype(int) - image)
        assert result.fooled and change.max() <= 5 and result.queries <= 1000
        assert int(np.argmax(result.proba)) == 0 and result.margin < 0
    weak = square_attack(score, image, label=1, epsilon=0.0, queries=50)
    assert not weak.fooled and np.array_equal(weak.image, image) and weak.queries == 1


# ------------------------------------------------------------------------------------------ runs


def test_resume_skips_finished_cells_and_reuses_their_results(faces, tmp_path):
    dataset = load_folder(faces)
    settings = TrialSettings(attacks=("clean", "type_b"), feature_sets=("centroid",), repeats=2, n_estimators=5)
    cache = LandmarkCache(tmp_path / "lm.sqlite")
    first = run_trials(dataset, settings, tmp_path / "out", cache=cache, progress=False)
    assert first["meta"]["cells_computed"] == 4 and first["meta"]["cells_reused"] == 0
    cell = next((tmp_path / "out" / "cells").glob("*/subject-kfold/forest_centroid/clean/r000.json"))
    stored = json.loads(cell.read_text())
    stored["variants"]["all"]["accuracy"] = 0.123  # a value no computation gives: proves the file is read
    cell.write_text(json.dumps(stored))
    settings.repeats = 3
    second = run_trials(dataset, settings, tmp_path / "out", cache=cache, progress=False)
    assert second["meta"]["cells_computed"] == 2 and second["meta"]["cells_reused"] == 4
    clean = summarize(second)["results"]["forest_centroid"]["clean"]
    assert clean["accuracy_repeats"][0] == 0.123 and len(clean["accuracy_repeats"]) == 3
    settings.n_estimators = 6  # another setting: other cells, nothing reused
    third = run_trials(dataset, settings, tmp_path / "out", cache=cache, progress=False)
    assert third["meta"]["cells_reused"] == 0 and third["meta"]["cells_computed"] == 6


def test_trials_cli_writes_the_report_for_every_model_and_attack(faces, tmp_path):
    out = tmp_path / "report"
    attacks = "clean,type_a,type_a_screened,type_b,mask,fgsm,pgd,scaling,scaling_defended,noise,adaptive"
    result = cli("trials", "--data", str(faces), "--models", "forest,cnn", "--attacks", attacks, "--repeats", "2",
                 "--cnn-repeats", "1", "--adaptive-repeats", "1", "--out", str(out), "--n-estimators", "5",
                 "--cnn-epochs", "1", "--surrogate-epochs", "1", "--epsilons", "0.01,0.05", "--noise-sigmas", "0.05",
                 "--adaptive-images", "2", "--adaptive-queries", "4", "--pgd-steps", "2",
                 "--cache", str(tmp_path / "lm.sqlite"), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "results.json").read_text())
    results = summary["results"]
    assert set(results) == {"forest", "forest_centroid", "cnn"}
    for model, row in results.items():
        assert set(row) == {*attacks.split(","), "tamper_detection"}, model
        detection = row.pop("tamper_detection")
        assert set(detection["tpr"]) == {"jaw_box", "mask", "scaling", "scaling_defended", "eye_boxes", "noise@0.05"}
        assert all(0 <= rate <= 1 for rate in detection["tpr"].values()) and 0 <= detection["fpr"] <= 1
        assert detection["tpr"]["jaw_box"] > detection["fpr"]  # black boxes over the jaw are seen
        for attack, cell in row.items():
            assert set(cell) >= REQUIRED_CELL_KEYS, (model, attack)
            assert 0 <= cell["accuracy_mean"] <= 1 and cell["seconds"] >= 0
            assert set(cell["per_class"]) <= {"happy", "surprise"}
        assert row["clean"]["repeats"] == (2 if model.startswith("forest") else 1)
        assert set(row["type_a"]["poisoned"]) == {"happy", "surprise"}
        assert set(row["type_a_screened"]["screened_out_mean"]) == {"happy", "surprise"}
        assert set(row["fgsm"]["by_variant"]) == {"eps=0.01", "eps=0.05"}
        assert set(row["adaptive"]["by_variant"]) == {"eps=0", "eps=0.01", "eps=0.05"}
        if model == "cnn":  # one repeat: no test is possible, and results.json says so with null
            assert row["type_b"]["paired_vs_clean"]["p"] is None
    report = (out / "report.md").read_text()
    assert "Table III" in report and "forest_centroid" in report and "Robust accuracy" in report
    assert "Tamper check" in report and "screened" in report
    for name in ("per_class_forest.png", "accuracy_vs_eps.png", "confusion_cnn_clean.png", "results.csv"):
        assert (out / name).stat().st_size > 0, name
    again = cli("trials", "--data", str(faces), "--models", "forest", "--attacks", "clean", "--repeats", "2",
                "--out", str(out), "--n-estimators", "5", "--epsilons", "0.01,0.05", "--noise-sigmas", "0.05",
                "--adaptive-images", "2", "--adaptive-queries", "4", "--pgd-steps", "2", "--cnn-epochs", "1",
                "--surrogate-epochs", "1", "--cache", str(tmp_path / "lm.sqlite"), "--quiet")
    assert again.returncode == 0, again.stderr
    assert "0 cells computed, 4 reused" in again.stdout


def test_both_protocols_side_by_side(faces, tmp_path):
    out = tmp_path / "both"
    result = cli("trials", "--data", str(faces), "--models", "forest", "--feature-sets", "centroid", "--attacks",
                 "clean,type_b", "--repeats", "2", "--protocol", "subject-kfold,paper", "--n-estimators", "5",
                 "--out", str(out), "--cache", str(tmp_path / "lm.sqlite"), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "results.json").read_text())
    assert summary["protocol"] == "subject-kfold" and set(summary["by_protocol"]) == {"subject-kfold", "paper"}
    for protocol in ("subject-kfold", "paper"):
        row = summary["by_protocol"][protocol]["forest_centroid"]
        assert set(row) == {"clean", "type_b", "tamper_detection"} and row["clean"]["repeats"] == 2
    assert summary["results"] == summary["by_protocol"]["subject-kfold"]
    report = (out / "report.md").read_text()
    assert "Protocols side by side" in report and "| subject-kfold | paper |" in report


def test_type_a_brings_its_screened_second_row():
    assert TrialSettings(attacks=("clean", "type_a", "type_b")).attacks == ("clean", "type_a", "type_a_screened",
                                                                           "type_b")
    assert TrialSettings(attacks=("type_a_screened", "type_a")).attacks == ("type_a_screened", "type_a")
    assert TrialSettings(attacks=("clean", "mask")).attacks == ("clean", "mask")


@pytest.mark.parametrize(("args", "expected"), [
    (("--attacks", "clean,bogus"), "bogus"),
    (("--models", "svm"), "svm"),
    (("--repeats", "0"), "repeats"),
    (("--protocol", "cross"), "cross"),
    (("--epsilons", "2"), "epsilons"),
    (("--cnn-occlusion", "1.5"), "occlusion"),
    (("--feature-sets", "pixels"), "pixels"),
    (("--surrogate", "/nonexistent/cnn.pt", "--attacks", "fgsm"), "cnn.pt"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, expected):
    result = cli("trials", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_is_one_line(tmp_path):
    result = cli("trials", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "not a directory" in result.stderr.strip().splitlines()[-1]


def test_ck48_centroid_forest_loses_accuracy_under_the_jaw_box(tmp_path):
    """The paper's method as published (one forest, no covered-face part) loses a third under Type B."""
    data = shared_dataset("ck_plus_48")
    settings = TrialSettings(attacks=("clean", "type_b"), feature_sets=("centroid",), repeats=3, covered_forest=False)
    run = run_trials(load_folder(data), settings, tmp_path, cache=LandmarkCache(tmp_path / "lm.sqlite"),
                     progress=False)
    row = summarize(run)["results"]["forest_centroid"]
    assert row["clean"]["accuracy_mean"] > 0.75  # paper: ~90% on its random split; ours is subject-wise
    assert row["type_b"]["accuracy_mean"] < row["clean"]["accuracy_mean"] - 0.2
    assert row["type_b"]["paired_vs_clean"]["p"] < 0.05


def test_the_covered_face_forest_keeps_most_of_the_accuracy_under_the_jaw_box(tmp_path):
    """The default forest routes faces whose lower part the visibility check finds covered to its covered part."""
    data = shared_dataset("ck_plus_48")
    settings = TrialSettings(attacks=("clean", "type_b"), feature_sets=(DEFAULT_FEATURE_SET,), repeats=3)
    run = run_trials(load_folder(data), settings, tmp_path, cache=LandmarkCache(tmp_path / "lm.sqlite"),
                     progress=False)
    row = summarize(run)["results"]["forest"]
    assert row["clean"]["accuracy_mean"] > 0.85
    assert row["type_b"]["accuracy_mean"] > row["clean"]["accuracy_mean"] - 0.12
