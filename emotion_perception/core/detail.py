"""The classifier nodes' `emotion/detail` document, without ROS: the nodes publish it and `bag evaluate`
writes the very same document into its results bag."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from emotion_perception.core.types import FacePrediction

DETAIL_VERSION = 2


def face_entries(ids: list[int], predictions: list[FacePrediction], min_confidence: float = 0.0,
                 with_landmarks: bool = False, frame_labels: list[str] | None = None,
                 checks: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The `faces` of a detail document: id, box, label, confidence, scores (landmarks on request), `uncertain`
    when the confidence is below `min_confidence`, `frame_label` (this frame's own label) when the scores are
    smoothed over frames, and each face's tamper check entries (`occlusion`, `tampered`) when given."""
    entries = []
    for k, (face_id, face) in enumerate(zip(ids, predictions)):
        entry = {"id": face_id, **face.to_json(with_landmarks), "uncertain": face.confidence < min_confidence}
        if frame_labels is not None:
            entry["frame_label"] = frame_labels[k]
        if checks is not None:
            entry.update(checks[k])
        entries.append(entry)
    return entries


def detail_json(
    header: Any, model: str, image_size: tuple[int, int], faces: Iterable[dict[str, Any]],
    latency_ms: float | None, processing_ms: float, frames: dict[str, int] | None = None,
) -> str:
    """The versioned emotion/detail document of one processed frame (see the README for the schema).

    `header` is any object with `stamp.sec`, `stamp.nanosec` and `frame_id` (a std_msgs/Header of rclpy
    or of rosbags). `frames` (optional) adds the node's frame counts so far: `lost_frames` (estimated from the input
    stamps: never received) and `dropped_frames` (received while busy, not processed)."""
    return json.dumps({
        "version": DETAIL_VERSION,
        "stamp": {"sec": int(header.stamp.sec), "nanosec": int(header.stamp.nanosec)},
        "frame_id": header.frame_id,
        "model": model,
        "image": {"width": image_size[0], "height": image_size[1]},
        "faces": list(faces),
        "latency_ms": None if latency_ms is None else round(latency_ms, 2),
        "processing_ms": round(processing_ms, 2),
        **(frames or {}),
    }, separators=(",", ":"))
