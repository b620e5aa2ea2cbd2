"""Score-based black-box attack (Square attack, Andriushchenko et al. 2020, L-inf, untargeted) on any image
classifier given only as a function grey image -> class probabilities, such as the whole landmark pipeline
(detector, 68 landmarks, features, forest) or the CNN pipeline (detector, crop, CNN).

The attack never sees gradients: it proposes a random square of +-epsilon in the face region and keeps it
when the margin p(true) - max p(other) does not grow. Equal margins are accepted too, so that the search can
cross the flat regions of a forest's piecewise-constant scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Square attack's schedule for a 10,000-query budget: the square's area fraction halves at these iterations.
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
Score = Callable[[np.ndarray], "np.ndarray | None"]
Region = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive


@dataclass
class BlackBoxResult:
    """The attacked image, whether the model got it wrong, the queries spent, the final margin and the model's
    probabilities on the attacked image (None: no face found)."""

    image: np.ndarray
    fooled: bool
    queries: int
    margin: float
    proba: np.ndarray | None


def margin(proba: np.ndarray | None, label: int) -> float:
    """p(label) - max p(other); -1 where the pipeline gave no answer (no face: the attacker has won)."""
    if proba is None:
        return -1.0
    others = np.delete(np.asarray(proba, float), label)
    return float(proba[label] - (others.max() if len(others) else 0.0))


def square_fraction(query: int, budget: int, p_init: float = 0.1) -> float:
    """Area fraction of the square at `query` of `budget`: Square attack's schedule rescaled to the budget."""
    step = int(query / max(budget, 1) * 10000)
    return p_init / 2 ** sum(step > halving for halving in P_HALVINGS)


def square_attack(
    score: Score, gray: np.ndarray, label: int, epsilon: float, queries: int = 100, seed: int = 0,
    region: Region | None = None, p_init: float = 0.1,
) -> BlackBoxResult:
    """Untargeted L-inf Square attack on a uint8 grey image within `region` (default: the whole image).

    The change is a whole number of grey levels, at most floor(255 * epsilon). Stops as soon as the model's
    answer is wrong; `queries` counts every call of `score`, including the first one on the clean image.
    """
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"expected a uint8 grey image, got {gray.dtype} {gray.shape}")
    if epsilon < 0 or queries < 1:
        raise ValueError(f"need epsilon >= 0 and queries >= 1, got {epsilon} and {queries}")
    h, w = gray.shape
    x0, y0, x1, y1 = region or (0, 0, w, h)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty attack region {region} in a {w}x{h} image")
    limit = int(np.floor(255.0 * epsilon + 1e-6))
    proba = score(gray)
    best, used = margin(proba, label), 1
    if best < 0 or limit == 0 or used >= queries:
        return BlackBoxResult(gray.copy(), best < 0, used, best, proba)
    rng = np.random.default_rng(seed)
    base = gray.astype(np.int16)
    rh, rw = y1 - y0, x1 - x0
    delta = np.zeros((h, w), np.int16)
    delta[y0:y1, x0:x1] = rng.choice([-limit, limit], size=(1, rw))  # vertical stripes, as the paper starts

    def compose(change: np.ndarray) -> np.ndarray:
        return np.clip(base + change, 0, 255).astype(np.uint8)

    current = compose(delta)
    start_proba = score(current)
    used += 1
    if margin(start_proba, label) <= best:  # the stripes are a proposal like any other
        best, proba = margin(start_proba, label), start_proba
    else:
        delta, current = np.zeros_like(delta), gray.copy()
    while best >= 0 and used < queries:
        side = round(np.sqrt(square_fraction(used, queries, p_init) * rh * rw))
        side = min(max(side, 1), rh, rw)
        r, c = y0 + int(rng.integers(0, rh - side + 1)), x0 + int(rng.integers(0, rw - side + 1))
        window = delta[r : r + side, c : c + side]
        sign = int(rng.choice([-limit, limit]))
        if np.all(window == sign):
            sign = -sign  # always propose a change
        proposal = delta.copy()
        proposal[r : r + side, c : c + side] = sign
        candidate = compose(proposal)
        candidate_proba = score(candidate)
        value = margin(candidate_proba, label)
        used += 1
        if value <= best:
            delta, current, best, proba = proposal, candidate, value, candidate_proba
    return BlackBoxResult(current, best < 0, used, best, proba)
