"""Feature sets: the 68 landmarks (and, for appearance sets, the grey image) -> feature vectors (`sets`), from
named measurements (`named`) and the HOG of an aligned face crop (`appearance`). Imports only the core."""

from emotion_perception.core.geometry import MIRROR, as_batch, mirror_landmarks
from emotion_perception.features.sets import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    GEOMETRY_SETS,
    centroid_offsets,
    compute,
    compute_mirrored,
    compute_with_mirrored,
    feature_names,
    needs_image,
    region_columns,
)

__all__ = [
    "DEFAULT_FEATURE_SET", "FEATURE_SETS", "GEOMETRY_SETS", "MIRROR", "as_batch", "centroid_offsets", "compute",
    "compute_mirrored", "compute_with_mirrored", "feature_names", "mirror_landmarks", "needs_image",
    "region_columns",
]
