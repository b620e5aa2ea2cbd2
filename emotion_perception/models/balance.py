"""How training draws its examples: weights that give datasets (strata) and the classes within them their
share, so that one big web dataset does not drown the posed ones and common classes do not drown rare ones.
Both model kinds draw with these weights (the CNN per batch, the forest per tree)."""

from __future__ import annotations

import numpy as np

BALANCES = ("none", "equal", "sqrt")


def balancing_weights(labels: np.ndarray, strata: np.ndarray | None, balance: str) -> np.ndarray:
    """Sampling weights (summing to 1): "none" every image alike; "equal" every stratum (dataset) the same share,
    every class within it the same; "sqrt" a stratum's share grows with the square root of its size and a class's
    share within it with the square root of its count."""
    n = len(labels)
    if balance == "none":
        return np.full(n, 1.0 / n)
    strata = np.zeros(n, dtype=object) if strata is None else np.asarray(strata, dtype=object)
    weights = np.zeros(n)
    for stratum in np.unique(strata.astype(str)):
        rows = strata.astype(str) == stratum
        stratum_share = np.sqrt(rows.sum()) if balance == "sqrt" else 1.0
        classes, counts = np.unique(labels[rows], return_counts=True)
        shares = np.sqrt(counts) if balance == "sqrt" else np.ones(len(counts))
        for label, count, share in zip(classes, counts, shares / shares.sum()):
            weights[rows & (labels == label)] = stratum_share * share / count
    return weights / weights.sum()
