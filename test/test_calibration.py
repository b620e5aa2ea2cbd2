"""Temperature scaling and the expected calibration error, on cases whose answers are known."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from emotion_perception.models.calibration import expected_calibration_error, fit_temperature, temper
from emotion_perception.models.landmark_model import EmotionModel


def test_tempering_softmax_scores_equals_dividing_the_logits():
    logits = torch.randn(20, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    proba = torch.softmax(logits, dim=1).numpy()
    for t in (0.5, 1.0, 2.5):
        assert temper(proba, t) == pytest.approx(torch.softmax(logits / t, dim=1).numpy(), abs=1e-9)
    with_zero = np.array([[0.0, 0.25, 0.75]])
    assert temper(with_zero, 2.0)[0, 0] == 0.0 and temper(with_zero, 2.0).sum() == pytest.approx(1.0)


def test_the_fitted_temperature_undoes_an_over_confident_model():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 5))
    calibrated = torch.softmax(torch.as_tensor(logits), 1).numpy()
    truth = np.array([rng.choice(5, p=p) for p in calibrated])  # labels drawn from calibrated probabilities
    over_confident = temper(calibrated, 1 / 3)  # the same model, three times too sure
    fitted = fit_temperature(over_confident, truth)
    assert fitted == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(over_confident, truth)
    after = expected_calibration_error(temper(over_confident, fitted), truth)
    assert before > 0.1 and after < 0.03


def test_ece_of_a_hand_checked_example():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    truth = np.array([0, 1, 0, 0])
    # bin of 0.9: confidence 0.9, accuracy 0.5; bin of 0.6: confidence 0.6, accuracy 1.0
    assert expected_calibration_error(proba, truth) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_calibrate_writes_the_temperature_into_the_model_and_its_scores_follow(tmp_path):
    evaluation = tmp_path / "lodo.json"
    evaluation.write_text(json.dumps({"temperature": 2.0, "ece_pooled": 0.2, "ece_pooled_calibrated": 0.05}))
    out = tmp_path / "calibrated.npz"
    result = subprocess.run([sys.executable, "-m", "emotion_perception", "calibrate", "--model", "forest",
                             "--temperature-from", str(evaluation), "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shipped, calibrated = EmotionModel.load(), EmotionModel.load(out)
    assert calibrated.temperature == 2.0 and calibrated.header["calibration"]["ece_after"] == 0.05
    x = np.random.default_rng(1).normal(0, 1, (3, shipped.forest.n_features))
    assert calibrated.predict_features(x, x) == pytest.approx(temper(shipped.predict_features(x, x), 2.0))
    refused = subprocess.run([sys.executable, "-m", "emotion_perception", "calibrate", "--model", "forest",
                              "--temperature", "0", "--out", str(tmp_path / "bad.npz")], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "temperature must be" in refused.stderr and not (tmp_path / "bad.npz").exists()
