"""Confidence that means something: temperature scaling of a model's class probabilities, fitted on held-out
predictions, and the expected calibration error (ECE) that measures it.

`temper(p, T)` = p ** (1 / T), renormalised: for a softmax model exactly softmax(logits / T), for the forest its
analogue on the averaged leaf fractions. T > 1 softens over-confident scores, T < 1 sharpens timid ones. A model
file's header carries its temperature (1.0 when none was fitted) and where it was fitted.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15


def temper(proba: np.ndarray, temperature: float) -> np.ndarray:
    """(n, k) probabilities raised to 1 / temperature and renormalised per row (zeros stay zero)."""
    p = np.asarray(proba, np.float64)
    if temperature == 1.0:
        return p
    powered = np.where(p > 0, np.power(np.maximum(p, 1e-300), 1.0 / temperature), 0.0)
    total = powered.sum(axis=1, keepdims=True)
    return np.divide(powered, total, out=np.full_like(powered, 1.0 / p.shape[1]), where=total > 0)


def negative_log_likelihood(proba: np.ndarray, truth: np.ndarray) -> float:
    """Mean -log p(true class) of (n, k) probabilities and (n,) true class indices (floored at 1e-12)."""
    picked = np.asarray(proba)[np.arange(len(truth)), truth]
    return float(-np.mean(np.log(np.maximum(picked, 1e-12))))


def fit_temperature(proba: np.ndarray, truth: np.ndarray) -> float:
    """The temperature (0.05-20) that minimises the negative log-likelihood of the true classes."""
    if len(truth) == 0:
        return 1.0
    result = minimize_scalar(lambda log_t: negative_log_likelihood(temper(proba, float(np.exp(log_t))), truth),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def expected_calibration_error(proba: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the gap between confidence and accuracy, averaged over `bins` equal-width confidence bins
    weighted by how many predictions fall in each."""
    if len(truth) == 0:
        return 0.0
    p = np.asarray(proba)
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)
    correct = predicted == truth
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap)
