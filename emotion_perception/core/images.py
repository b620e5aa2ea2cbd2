"""Image loading and conversion to the 8-bit grayscale that dlib's detector and predictor consume."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from emotion_perception.core.errors import ImageError


def to_gray_u8(image: np.ndarray, order: str = "bgr") -> np.ndarray:
    """Convert a grey, colour (3/4 channel) or 16-bit/float image to a contiguous uint8 grey image.

    `order` is the channel order of colour images ("bgr" as OpenCV reads them, or "rgb").
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ImageError(f"empty image (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        channels = image.shape[2]
        if channels not in (3, 4):
            raise ImageError(f"unsupported channel count {channels} (shape {image.shape})")
        rgb_first = order == "rgb"
        code = {
            (3, False): cv2.COLOR_BGR2GRAY, (3, True): cv2.COLOR_RGB2GRAY,
            (4, False): cv2.COLOR_BGRA2GRAY, (4, True): cv2.COLOR_RGBA2GRAY,
        }[(channels, rgb_first)]
        image = cv2.cvtColor(_to_u8(image), code)
    elif image.ndim != 2:
        raise ImageError(f"unsupported image shape {image.shape}")
    return np.ascontiguousarray(_to_u8(image))


def _to_u8(image: np.ndarray) -> np.ndarray:
    """Scale 16-bit, boolean or float images into uint8 without clipping information away."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ImageError("image holds NaN or infinite values")
        top = 1.0 if image.max() <= 1.0 else 255.0
        return np.clip(image * (255.0 / top), 0, 255).round().astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported pixel type {image.dtype}")


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file (PNG, JPEG, TIFF, GIF, ...) as uint8 grey; ImageError names the path on failure."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        image = _read_with_pillow(path)
    try:
        return to_gray_u8(image)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def _read_with_pillow(path: Path) -> np.ndarray:
    """Fallback reader for formats OpenCV does not decode (e.g. GIF)."""
    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert("L"))
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from None
