"""Image files and pixel arrays -> uint8 grey (what dlib's detector and predictor consume) or uint8 BGR (for
drawing and for attacks on colour): the one image reader and the one 8-bit conversion of the package."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from emotion_perception.core.errors import ImageError

# A file OpenCV cannot decode is reported by ImageError, once; OpenCV's own warnings ("PNG input buffer is
# incomplete") would add lines of their own to the one-line errors of the command line.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


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
        image = cv2.cvtColor(to_u8(image), code)
    elif image.ndim != 2:
        raise ImageError(f"unsupported image shape {image.shape}")
    return np.ascontiguousarray(to_u8(image))


def to_bgr_u8(image: np.ndarray, order: str = "bgr") -> np.ndarray:
    """A grey, colour (3/4 channel) or 16-bit/float image as contiguous uint8 BGR; `order` as for `to_gray_u8`."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise ImageError(f"empty or missing image ({getattr(image, 'shape', type(image).__name__)})")
    pixels = to_u8(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ImageError(f"unsupported image shape {image.shape}")
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR if order == "rgb" else cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(pixels[:, :, ::-1] if order == "rgb" else pixels)


def to_u8(image: np.ndarray) -> np.ndarray:
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


def read_image(path: str | Path, colour: bool = False) -> np.ndarray:
    """Read an image file (PNG, JPEG, TIFF, GIF, ...) as uint8 grey, or uint8 BGR with `colour`; ImageError names
    the path on failure."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from None
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        image = _read_with_pillow(path, colour)
    try:
        return to_bgr_u8(image) if colour else to_gray_u8(image)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def read_gray(path: str | Path) -> np.ndarray:
    """An image file as uint8 grey (see `read_image`)."""
    return read_image(path)


def read_bgr(path: str | Path) -> np.ndarray:
    """An image file as uint8 BGR (see `read_image`)."""
    return read_image(path, colour=True)


def _read_with_pillow(path: Path, colour: bool) -> np.ndarray:
    """Fallback reader for formats OpenCV does not decode (e.g. GIF): grey, or BGR with `colour`."""
    try:
        with Image.open(path) as picture:
            if not colour:
                return np.asarray(picture.convert("L"))
            return np.ascontiguousarray(np.asarray(picture.convert("RGB"))[:, :, ::-1])
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from None
