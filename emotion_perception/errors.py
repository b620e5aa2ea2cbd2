"""The exception types that mean "bad input from the user": CLIs print them as one line, nodes log them."""

from __future__ import annotations

from emotion_perception.bags import BagError
from emotion_perception.datasets import DatasetError
from emotion_perception.evaluation import ProtocolError
from emotion_perception.forest import ForestFileError
from emotion_perception.images import ImageError
from emotion_perception.landmarks import ModelFileError

USER_ERRORS: tuple[type[Exception], ...] = (BagError, DatasetError, ForestFileError, ImageError, ModelFileError,
                                            ProtocolError)
