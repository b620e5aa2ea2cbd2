"""Parameter specs (type, default, description, range) and their validation, without ROS imports.

Every node parameter is declared from a spec; a spec is the one place of its default. The specs of the
per-frame step live here; those of the attacks in `attacks.registry`, and `ros.params` assembles the nodes'
tables from them. The shipped YAML, the launch file and the docs' tables are generated from or tested against
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter. `tunable`: may change while the node is active (`ros2 param set`);
    other parameters take effect on the next configure and are rejected while the node is configured."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    tunable: bool = False
    must_exist: bool = False  # a file path that, when not empty, must name an existing file

    @property
    def kind(self) -> type:
        return type(self.default)

    def check(self, value: Any) -> str | None:
        """None when `value` is acceptable, otherwise the reason it is not."""
        kind = self.kind
        if type(value) is not kind:  # strict, as rclpy: a YAML `1` for a float parameter is refused (write 1.0)
            return f"{self.name} must be of type {kind.__name__}, got {type(value).__name__} {value!r}"
        if self.low is not None and value < self.low:
            return f"{self.name} must be >= {self.low}, got {value}"
        if self.high is not None and value > self.high:
            return f"{self.name} must be <= {self.high}, got {value}"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        if self.must_exist and value and not Path(value).is_file():
            return f"{self.name}: no such file {value!r}"
        return None


FRAME_STEP_PARAMS: tuple[ParamSpec, ...] = (
    # The classifier nodes' per-frame step (`pipeline.classify_camera_frame` with a `FaceTracker`): the same
    # settings serve the nodes, `bag evaluate` and `bench`.
    ParamSpec("detect_every", 15, "start a face detection sweep every N frames, track faces in between", 1, 100,
              tunable=True),
    ParamSpec("detect_tiles", 2, "split each detection into a half-scale pass and this many overlapping strips, "
              "one per frame, so that no frame pays for a whole-frame search (1: whole frame at once)", 1, 4,
              tunable=True),
    ParamSpec("track_every", 5, "update the correlation tracker every N frames; on the frames between, the "
              "previous landmarks carry the face box", 1, 10, tunable=True),
    ParamSpec("detect_scale", 1.0, "resize factor of the frame searched by the detector (0.5: ~4x faster, "
              "finds faces of ~160 px and larger)", 0.1, 1.0, tunable=True),
    ParamSpec("upsample", 0, "detector up-sampling steps (finds smaller faces, ~4x slower per step)", 0, 3,
              tunable=True),
    ParamSpec("min_face_size", 40, "smallest face side kept, in pixels of the processed frame", 8, 4096,
              tunable=True),
    ParamSpec("min_tracking_psr", 8.0, "correlation-tracker peak-to-side-lobe ratio below which a face counts "
              "as lost and detection runs again", 0.0, 100.0, tunable=True),
    ParamSpec("max_faces", 8, "follow and classify at most this many (largest) faces", 1, 64, tunable=True),
    ParamSpec("max_processing_width", 1280, "wider frames are downscaled to this width for processing "
              "(boxes and landmarks are published in the original frame's pixels)", 160, 8192, tunable=True),
    ParamSpec("max_image_pixels", 16_777_216, "frames with more pixels are rejected as bad frames", 1,
              268_435_456, tunable=True),
)


NEW_FACE_PARAMS: tuple[ParamSpec, ...] = (
    # The classifier nodes' rule for publishing a new face (`FaceTracker`), so that a weak, intermittent false
    # detection does not come and go under ever new ids. `bag evaluate` and `bench` publish every detection.
    ParamSpec("min_detection_score", 0.3, "detector score a new face needs to be published on its first detection "
              "(dlib HOG scores: clear frontal faces score about 1 and more; docs/reliability.md)", 0.0, 5.0,
              tunable=True),
    ParamSpec("confirm_detections", 8, "a new face scoring below min_detection_score is published only once the "
              "detector has found it on this many frames in a row (searching a window around it; 1: at once, "
              "whatever its score; 0: never); with detect_every and detect_tiles 1 (each frame on its own, as bag "
              "evaluate) at once", 0, 30, tunable=True),
)


def specs_by_name(specs: Iterable[ParamSpec]) -> dict[str, ParamSpec]:
    return {spec.name: spec for spec in specs}


def validate(specs: Iterable[ParamSpec], values: Mapping[str, Any]) -> list[str]:
    """Reasons why `values` (name -> value) are not acceptable; unknown names are reported too."""
    known = specs_by_name(specs)
    problems = []
    for name, value in values.items():
        spec = known.get(name)
        if spec is None:
            problems.append(f"unknown parameter {name!r}")
            continue
        reason = spec.check(value)
        if reason:
            problems.append(reason)
    return problems


def defaults(specs: Iterable[ParamSpec]) -> dict[str, Any]:
    return {spec.name: spec.default for spec in specs}
