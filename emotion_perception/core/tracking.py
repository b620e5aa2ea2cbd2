"""Real-time face following for video: detect every N frames, correlation-track in between, stable ids.

Detection (dlib HOG, optionally on a downscaled copy of the frame) runs every `detect_every` frames,
on the first frame, and whenever a tracked face is lost. Between detections each face is followed by
its own `dlib.correlation_tracker`; a peak-to-side-lobe ratio below `min_psr` (the face left, was
covered or changed too much) drops the track and starts a detection on the same frame. With
`track_every` > 1 the correlation tracker (a fixed ~3 ms per face) runs only every that many frames;
on the frames between, the box is carried by the previous frame's landmarks (source "landmarks"), and the
next tracker update starts from that box.

A detection is a sweep over one or more regions, one region per frame, so that no single frame pays for a
whole-frame search. With `detect_tiles` = 1 the sweep is the whole frame at `detect_scale`. With k > 1 it is
k + 1 frames: the whole frame at half that scale (faces of twice the smallest size and more), then k
overlapping strips at `detect_scale` (the smaller faces; the overlap is larger than any face the half-scale
pass can miss, so every face lies whole inside one strip). On multi-region sweeps the faces are carried by
their landmarks on the sweep's frames. Detections are matched to tracked faces by box overlap (IoU), so a
face keeps its integer id for as long as it is followed; a tracked face that no region of a sweep finds
is dropped at the sweep's end. Landmarks are placed on every frame.

A new face whose detection scores below `min_detection_score` is tentative: it is followed like any other, but
returned only once the detector has found it on `confirm_detections` frames in a row (on the frames after its
first detection, in a window around it); a frame that misses it drops it. So a weak false detection that comes
and goes with the camera's noise never gets an id, while a weak real face is returned a few frames late. Losing
a tentative face starts no sweep. With `detect_every` = `detect_tiles` = 1 every frame is judged on its own (as
`bag evaluate` does), so a weak new face is returned at once (or, with `confirm_detections` 0, never).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import dlib
import numpy as np

from emotion_perception.core.faces import FaceBox, FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor


@dataclass
class TrackedFace:
    """One face in one frame: its stable id, its box (source 'detector' or 'tracker') and 68 landmarks."""

    id: int
    box: FaceBox
    landmarks: np.ndarray


@dataclass
class _Track:
    id: int
    tracker: dlib.correlation_tracker
    box: FaceBox
    landmarks: np.ndarray | None = None
    # The box moved without the correlation tracker (landmarks, a detection): its next update starts there.
    guess: bool = False
    template: np.ndarray | None = None  # the face at its box, shrunk by template_scale
    template_scale: float = 1.0
    # The box relative to its landmarks' bounding box: (dx, dy, dw, dh) in units of that box's size.
    offset: tuple[float, float, float, float] | None = None
    confirmed: bool = True  # returned by `update`; a tentative face (weak first detection) is not
    hits: int = 1  # frames in a row on which the detector found the face
    seen: int = 0  # the frame on which the detector found it last


def landmark_bounds(points: np.ndarray) -> tuple[float, float, float, float]:
    """(left, top, width, height) of the landmarks' bounding box (width/height at least 1)."""
    left, top = points.min(axis=0)
    right, bottom = points.max(axis=0)
    return float(left), float(top), max(float(right - left), 1.0), max(float(bottom - top), 1.0)


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / float(a.area + b.area - inter)


def match_boxes(tracked: list[FaceBox], detected: list[FaceBox], min_iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one (tracked index, detected index) pairs, highest overlap first, each >= min_iou."""
    pairs = sorted(
        ((iou(t, d), i, j) for i, t in enumerate(tracked) for j, d in enumerate(detected)), reverse=True
    )
    used_t: set[int] = set()
    used_d: set[int] = set()
    matches = []
    for overlap, i, j in pairs:
        if overlap < min_iou:
            break
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
            matches.append((i, j))
    return matches


# A face's appearance template: its box shrunk to this many pixels on the longer side.
TEMPLATE_SIDE = 32
# On frames without a tracker update the template is searched this fraction of the box size around the box.
SEARCH_MARGIN = 0.5
# Normalised cross-correlation below which a box carried by landmarks is not trusted: the correlation tracker
# checks it on the same frame (a cut, a jump or an occlusion; smooth video scores about 0.95 and more).
MIN_MATCH = 0.7
# A best match farther than this fraction of the box size is not trusted either: a fast move or a false match (the
# template of a face under a jaw box matched the uncovered face half a face lower); the tracker checks it.
MAX_SHIFT = 0.25
# dlib's frontal detector finds faces from about this side (pixels of the image it searches) upwards.
DETECTOR_MIN_FACE = 80
# Strips overlap by this many times the largest face the half-scale pass can miss.
STRIP_OVERLAP = 1.25


@dataclass(frozen=True)
class Region:
    """One part of a detection sweep: a window of the frame (x1/y1 exclusive) searched at `scale`."""

    x0: int
    y0: int
    x1: int
    y1: int
    scale: float


def sweep_regions(width: int, height: int, scale: float, tiles: int, upsample: int = 0) -> list[Region]:
    """The regions of one detection sweep over a width x height frame (see the module docstring)."""
    if tiles <= 1:
        return [Region(0, 0, width, height, scale)]
    # Faces from `smallest` px are found at `scale`; the half-scale pass finds those of 2 * smallest and up.
    smallest = DETECTOR_MIN_FACE / (scale * 2**upsample)
    overlap = round(STRIP_OVERLAP * 2 * smallest)
    along = max(width, height)
    span = min(along, -(-(along + (tiles - 1) * overlap) // tiles))
    starts = [round(i * (along - span) / (tiles - 1)) for i in range(tiles)]
    if width >= height:
        strips = [Region(x, 0, x + span, height, scale) for x in starts]
    else:
        strips = [Region(0, y, width, y + span, scale) for y in starts]
    return [Region(0, 0, width, height, scale / 2), *strips]


class FaceTracker:
    """Faces of consecutive grey video frames, each with a stable id, largest first.

    detect_every: start a detection sweep every N frames (1 = every frame, no tracking between).
    detect_scale: resize factor of the frame searched by the detector (0.5 = half size, ~4x faster;
        faces must then be about 160 px or larger, as dlib's detector finds faces of ~80 px).
    detect_tiles: regions of a sweep besides the half-scale pass (1: the whole frame in one go).
    min_psr: correlation-tracker peak-to-side-lobe ratio below which a track counts as lost.
    min_face_size: smallest face side kept, in pixels of the full frame.
    match_iou: overlap needed for a detection to continue a tracked face's id.
    max_faces: at most this many faces (the largest) are followed and landmarked.
    track_every: correlation-tracker update every N frames, landmarks carry the box between.
    min_detection_score: a new face scoring below this is tentative (see the module docstring).
    confirm_detections: frames in a row on which a tentative face must be detected before it is returned
        (1: at once, whatever its score; 0: never).
    """

    def __init__(
        self,
        detector: FaceDetector | None = None,
        predictor: LandmarkPredictor | None = None,
        detect_every: int = 10,
        detect_scale: float = 1.0,
        min_psr: float = 8.0,
        min_face_size: int = 40,
        match_iou: float = 0.3,
        max_faces: int = 8,
        track_every: int = 1,
        detect_tiles: int = 1,
        min_detection_score: float = 0.0,
        confirm_detections: int = 1,
    ) -> None:
        self.detector = detector or FaceDetector(whole_image_fallback=False)
        self.predictor = predictor or LandmarkPredictor()
        self.configure(detect_every, detect_scale, min_psr, min_face_size, match_iou, max_faces, track_every,
                       detect_tiles, min_detection_score, confirm_detections)
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)
        self._since_detection = 0
        self._sweep: list[Region] = []  # the regions still to search in the running sweep
        self._whole_next = False  # the next sweep searches the whole frame at once (the detector settings changed)
        self._confirmed: set[int] = set()  # ids found so far in the running sweep
        self._frame = 0  # frames seen
        self.detections = 0  # sweeps started so far
        self.lost = 0  # tracks dropped because the tracker lost them

    def configure(
        self, detect_every: int, detect_scale: float, min_psr: float, min_face_size: int,
        match_iou: float, max_faces: int, track_every: int = 1, detect_tiles: int = 1,
        min_detection_score: float = 0.0, confirm_detections: int = 1,
    ) -> None:
        """Change the settings; takes effect on the next frame (the next sweep for the detector), tracks are
        kept."""
        checks = {
            "detect_every must be >= 1": detect_every >= 1,
            "detect_scale must be in (0, 1]": 0.0 < detect_scale <= 1.0,
            "min_face_size must be >= 1": min_face_size >= 1,
            "match_iou must be in (0, 1]": 0.0 < match_iou <= 1.0,
            "max_faces must be >= 1": max_faces >= 1,
            "track_every must be >= 1": track_every >= 1,
            "detect_tiles must be >= 1": detect_tiles >= 1,
            "confirm_detections must be >= 0": confirm_detections >= 0,
        }
        problems = [message for message, ok in checks.items() if not ok]
        if problems:
            raise ValueError("; ".join(problems))
        self.detect_every = int(detect_every)
        self.detect_scale = float(detect_scale)
        self.min_psr = float(min_psr)
        self.min_face_size = int(min_face_size)
        self.match_iou = float(match_iou)
        self.max_faces = int(max_faces)
        self.track_every = int(track_every)
        self.detect_tiles = int(detect_tiles)
        self.min_detection_score = float(min_detection_score)
        self.confirm_detections = int(confirm_detections)

    @property
    def per_frame(self) -> bool:
        """Detection on every frame, the whole frame at once: each frame's result depends on it alone."""
        return self.detect_every == 1 and self.detect_tiles == 1

    def apply_params(self, params: Mapping[str, Any]) -> None:
        """Take the settings from a classifier node's parameters (names as in `ros.params`; those of new faces
        are optional). A change of what the detector finds starts a new detection on the next frame, so that it
        takes effect at once."""
        finds = (self.detect_scale, self.min_face_size, self.max_faces, self.detector.upsample)
        self.configure(params["detect_every"], params["detect_scale"], params["min_tracking_psr"],
                       params["min_face_size"], self.match_iou, params["max_faces"], params["track_every"],
                       params["detect_tiles"], params.get("min_detection_score", self.min_detection_score),
                       params.get("confirm_detections", self.confirm_detections))
        self.detector.upsample = params["upsample"]
        if finds != (self.detect_scale, self.min_face_size, self.max_faces, self.detector.upsample):
            self._sweep, self._whole_next = [], True
            self._since_detection = self.detect_every

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up, so an old id is never reused)."""
        self._tracks = []
        self._sweep = []
        self._since_detection = 0

    def update(self, gray: np.ndarray) -> list[TrackedFace]:
        """The faces of the next frame (uint8 grey, contiguous), largest first."""
        height, width = gray.shape[:2]
        self._frame += 1
        if not self._sweep:
            self._since_detection += 1
            due = not self._tracks or self._since_detection >= self.detect_every
            # Landmarks carry the boxes between tracker updates, and on a multi-frame sweep's frames.
            if (due and self.detect_tiles > 1) or (not due and self._since_detection % self.track_every):
                due = not self._carry_by_landmarks(gray) or due
            elif not due:
                due = not self._follow(gray, self._tracks)
            if due and not self._sweep:
                self._start_sweep(width, height)
        elif self._tracks and not self._carry_by_landmarks(gray):
            self._start_sweep(width, height)  # a face was lost in the middle of a sweep: start again
        if self._sweep:
            self._sweep_step(gray)
        self._check_tentative(gray)
        self._tracks.sort(key=lambda t: t.box.area, reverse=True)
        faces = []
        for track in self._tracks:
            track.landmarks = self.predictor.predict(gray, track.box)
            if track.box.source != "landmarks":
                left, top, w, h = landmark_bounds(track.landmarks)
                box = track.box
                track.offset = ((box.left - left) / w, (box.top - top) / h, box.width / w, box.height / h)
            track.template, track.template_scale = face_template(gray, track.box)
            if track.confirmed:
                faces.append(TrackedFace(track.id, track.box, track.landmarks))
        return faces

    def _start_sweep(self, width: int, height: int) -> None:
        """With no face followed (a first frame, an empty scene, the last face lost) or new detector settings,
        the whole frame is searched at once, so that a face is found on the frame it appears in; otherwise the
        sweep is split."""
        self.detections += 1
        tiles = self.detect_tiles if self._tracks and not self._whole_next else 1
        self._whole_next = False
        self._sweep = sweep_regions(width, height, self.detect_scale, tiles, self.detector.upsample)
        self._confirmed = set()

    def _sweep_step(self, gray: np.ndarray) -> None:
        """Search the sweep's next region, merge its faces into the tracks; at the sweep's end drop the tracks
        that no region found."""
        region = self._sweep.pop(0)
        boxes = self._detect_boxes(gray, region)[: self.max_faces]
        matches = dict((j, i) for i, j in match_boxes([t.box for t in self._tracks], boxes, self.match_iou))
        started = []
        for j, box in enumerate(boxes):
            if j in matches:  # a followed face: its tracker goes on from the detected box
                track = self._tracks[matches[j]]
                track.box, track.guess = box, True
                self._detected(track)
            else:
                strong = box.score >= self.min_detection_score or self.confirm_detections == 1 or self.per_frame
                if box.score < self.min_detection_score and self.confirm_detections == 0:
                    continue
                track = _Track(next(self._ids), dlib.correlation_tracker(), box, confirmed=strong, seen=self._frame)
                track.tracker.start_track(gray, box.to_dlib())
                started.append(track)
            self._confirmed.add(track.id)
        self._tracks.extend(started)
        if not self._sweep:
            self._tracks = [t for t in self._tracks if t.id in self._confirmed]
            self._since_detection = 0
        if len(self._tracks) > self.max_faces:
            self._tracks = sorted(self._tracks, key=lambda t: t.box.area, reverse=True)[: self.max_faces]

    def _detected(self, track: _Track) -> None:
        """The detector found `track` on this frame: one more in a row, confirmed when there are enough."""
        if track.seen != self._frame:
            track.hits = track.hits + 1 if track.seen == self._frame - 1 else 1
            track.seen = self._frame
        track.confirmed = track.confirmed or track.hits >= self.confirm_detections > 0

    def _check_tentative(self, gray: np.ndarray) -> None:
        """Search a window around each tentative face not yet detected on this frame; drop those it misses."""
        height, width = gray.shape[:2]
        missed = []
        for track in self._tracks:
            if track.confirmed or track.seen == self._frame:
                continue
            box, margin = track.box, 0.5
            region = Region(max(0, round(box.left - margin * box.width)), max(0, round(box.top - margin * box.height)),
                            min(width, round(box.right + margin * box.width)),
                            min(height, round(box.bottom + margin * box.height)), self.detect_scale)
            found = [b for b in self._detect_boxes(gray, region) if iou(b, box) >= self.match_iou]
            if found:
                track.box, track.guess = max(found, key=lambda b: iou(b, box)), True
                self._detected(track)
            else:
                missed.append(track)
        self._tracks = [t for t in self._tracks if all(t is not gone for gone in missed)]

    def _carry_by_landmarks(self, gray: np.ndarray) -> bool:
        """Place each box where the previous landmarks say the face is, moved by where the face's template
        matches best nearby (no tracker update). Boxes whose template does not match go through the
        correlation tracker on this frame; False when that lost one."""
        height, width = gray.shape[:2]
        kept, unsure = [], []
        for track in self._tracks:
            if track.landmarks is None or track.offset is None:
                continue
            shift = template_shift(gray, track)
            if shift is None:
                track.guess = True  # the tracker starts from the last box it can trust
                unsure.append(track)
                kept.append(track)
                continue
            left, top, w, h = landmark_bounds(track.landmarks)
            dx, dy, dw, dh = track.offset
            left, top = left + shift[0], top + shift[1]
            rect = dlib.drectangle(left + dx * w, top + dy * h, left + dx * w + dw * w, top + dy * h + dh * h)
            box = _clipped(rect, width, height, track.box.score, "landmarks")
            if box is not None:
                track.box, track.guess = box, True
                kept.append(track)
        self._tracks = kept
        return self._follow(gray, unsure) if unsure else True

    def _follow(self, gray: np.ndarray, tracks: list[_Track]) -> bool:
        """Move the given tracks by their correlation trackers (dropping those lost); False when a confirmed one
        was lost."""
        height, width = gray.shape[:2]
        lost = []
        for track in tracks:
            if track.guess:  # the box moved without the tracker: start it from there
                psr = track.tracker.update(gray, track.box.to_dlib())
                track.guess = False
            else:
                psr = track.tracker.update(gray)
            box = _clipped(track.tracker.get_position(), width, height, track.box.score, "tracker")
            if not psr >= self.min_psr or box is None or min(box.width, box.height) < self.min_face_size:
                self.lost += 1
                lost.append(track)
                continue
            track.box = box
        self._tracks = [t for t in self._tracks if all(t is not gone for gone in lost)]
        return not any(t.confirmed for t in lost)

    def _detect_boxes(self, gray: np.ndarray, region: Region) -> list[FaceBox]:
        """Detector boxes of one region in full-frame pixels, largest first, at least `min_face_size`."""
        image = gray[region.y0 : region.y1, region.x0 : region.x1]
        if region.scale < 1.0:
            size = (max(1, round(image.shape[1] * region.scale)), max(1, round(image.shape[0] * region.scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            image = np.ascontiguousarray(image)
        boxes = self.detector.detect_prepared(image, is_crop=False)
        if region.scale < 1.0:
            boxes = [box.scaled(1.0 / region.scale) for box in boxes]
        height, width = gray.shape[:2]
        clipped = (
            _clipped(dlib.drectangle(b.left + region.x0, b.top + region.y0, b.right + region.x0,
                                     b.bottom + region.y0), width, height, b.score, "detector")
            for b in boxes
        )
        return [b for b in clipped if b is not None and min(b.width, b.height) >= self.min_face_size]


def face_template(gray: np.ndarray, box: FaceBox) -> tuple[np.ndarray, float]:
    """The face's pixels in its box, shrunk to TEMPLATE_SIDE on the longer side, and the shrink factor."""
    scale = min(1.0, TEMPLATE_SIDE / max(box.width, box.height, 1))
    patch = gray[box.top : box.bottom + 1, box.left : box.right + 1]
    size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
    return cv2.resize(patch, size, interpolation=cv2.INTER_AREA), scale


def template_shift(gray: np.ndarray, track: _Track) -> tuple[float, float] | None:
    """How far (x, y pixels) the face moved since its template was taken, by normalised cross-correlation in a
    window around its box; None when the best match scores below MIN_MATCH, lies farther than MAX_SHIFT of the
    box size, or the window is too small."""
    if track.template is None:
        return None
    box, scale, template = track.box, track.template_scale, track.template
    reach_x, reach_y = SEARCH_MARGIN * box.width, SEARCH_MARGIN * box.height
    x0, y0 = max(0, round(box.left - reach_x)), max(0, round(box.top - reach_y))
    x1 = min(gray.shape[1], round(box.right + 1 + reach_x))
    y1 = min(gray.shape[0], round(box.bottom + 1 + reach_y))
    size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
    if size[0] < template.shape[1] or size[1] < template.shape[0]:
        return None
    window = cv2.resize(gray[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    _, best, _, (mx, my) = cv2.minMaxLoc(cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED))
    dx, dy = x0 + mx / scale - box.left, y0 + my / scale - box.top
    if not best >= MIN_MATCH or abs(dx) > MAX_SHIFT * box.width or abs(dy) > MAX_SHIFT * box.height:
        return None
    return dx, dy


def _clipped(
    rect: dlib.drectangle | dlib.rectangle, width: int, height: int, score: float, source: str
) -> FaceBox | None:
    """The rectangle clipped to the frame, or None when less than half of it lies inside."""
    left, top, right, bottom = (round(rect.left()), round(rect.top()), round(rect.right()), round(rect.bottom()))
    inside = FaceBox(max(left, 0), max(top, 0), min(right, width - 1), min(bottom, height - 1), score, source)
    full = max(right - left, 0) * max(bottom - top, 0)
    if full == 0 or inside.area < 0.5 * full:
        return None
    return inside
