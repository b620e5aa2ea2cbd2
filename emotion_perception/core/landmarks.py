"""dlib's 68-point facial landmark predictor and the resolution of its model file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dlib
import numpy as np

from emotion_perception.core.errors import ModelFileError
from emotion_perception.core.faces import FaceBox

N_LANDMARKS = 68



def default_predictor_path() -> Path:
    """The 68-point model shipped by the `face_recognition_models` package.

    Located without importing the package, whose import needs the deprecated `pkg_resources`.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "face_recognition_models is not installed; install it or pass the path of a 68-point .dat model"
        )
    return Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


def resolve_predictor_path(path: str | Path | None) -> Path:
    """The given path, or the default model, checked to exist."""
    resolved = Path(path) if path else default_predictor_path()
    if not resolved.is_file():
        raise ModelFileError(f"landmark model {resolved}: no such file")
    return resolved


class LandmarkPredictor:
    """68 (x, y) landmarks for a face box in a grey image."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.given = None if path is None else str(path)
        self.path = resolve_predictor_path(path)
        try:
            self._predictor = dlib.shape_predictor(str(self.path))
        except RuntimeError as error:
            raise ModelFileError(
                f"landmark model {self.path}: not a dlib shape predictor ({str(error).strip()})"
            ) from None
        probe = self._predictor(np.zeros((64, 64), np.uint8), dlib.rectangle(8, 8, 56, 56))
        if probe.num_parts != N_LANDMARKS:
            raise ModelFileError(
                f"landmark model {self.path}: predicts {probe.num_parts} points, need {N_LANDMARKS}"
            )

    def __reduce__(self) -> tuple:
        """Pickled as the path it was given (the shipped model: none), loaded again where it is unpickled: a worker
        process reads the model file itself instead of receiving 100 MB."""
        return LandmarkPredictor, (self.given,)

    def predict(self, gray: np.ndarray, box: FaceBox) -> np.ndarray:
        """(68, 2) float32 landmark coordinates in the image's pixels."""
        shape = self._predictor(gray, box.to_dlib())
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
