"""Noise baselines: Gaussian and salt-and-pepper noise, seeded."""

from __future__ import annotations

import numpy as np

from emotion_perception.attacks.pixels import check_u8


def gaussian_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of standard deviation `sigma` on the [0, 1] pixel scale, clipped, seeded."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    image = check_u8(image)
    noise = np.random.default_rng(seed).normal(0.0, sigma * 255.0, image.shape)
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


def salt_and_pepper(image: np.ndarray, amount: float, seed: int = 0) -> np.ndarray:
    """A fraction `amount` of the pixels set to black or white (half each on average), seeded; colour
    pixels change in all channels together."""
    if not 0 <= amount <= 1:
        raise ValueError(f"amount must be in [0, 1], got {amount}")
    out = check_u8(image).copy()
    rng = np.random.default_rng(seed)
    hit = rng.random(image.shape[:2]) < amount
    white = rng.random(image.shape[:2]) < 0.5
    out[hit & white] = 255
    out[hit & ~white] = 0
    return out
