"""Face following on frame sequences made from the astronaut photo: stable ids, moving boxes, lost faces."""

import itertools

import cv2
import numpy as np
import pytest
from face_images import astronaut_gray

from emotion_perception.core.faces import FaceBox, FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.params import defaults
from emotion_perception.core.tracking import FaceTracker, Region, iou, match_boxes, sweep_regions
from emotion_perception.ros.params import LANDMARK_NODE_PARAMS

FACE = (slice(30, 250), slice(120, 320))  # rows, columns of the astronaut photo holding her head


def frame_with_face(x: int, y: int, scale_face: np.ndarray | None = None) -> np.ndarray:
    """A 640x480 grey frame with the astronaut's head pasted with its top-left corner at (x, y)."""
    frame = np.full((480, 640), 120, np.uint8)
    face = astronaut_gray()[FACE] if scale_face is None else scale_face
    frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame


@pytest.fixture(scope="module")
def predictor() -> LandmarkPredictor:
    return LandmarkPredictor()


def make_tracker(predictor: LandmarkPredictor, **settings) -> FaceTracker:
    return FaceTracker(FaceDetector(whole_image_fallback=False), predictor, **settings)


def test_moving_face_keeps_its_id_and_the_box_follows(predictor):
    tracker = make_tracker(predictor, detect_every=5)
    lefts, sources = [], []
    for step in range(12):
        faces = tracker.update(frame_with_face(100 + 4 * step, 60 + 2 * step))
        assert len(faces) == 1
        assert faces[0].id == 1
        assert faces[0].landmarks.shape == (68, 2)
        lefts.append(faces[0].box.left)
        sources.append(faces[0].box.source)
    assert sources[0] == "detector" and sources[5] == "detector" and sources[10] == "detector"
    assert sources.count("tracker") == 9  # frames between detections are tracked, not detected
    assert tracker.detections == 3
    # the box moves with the face (4 px per frame, 44 px in all), within a few pixels
    assert abs((lefts[-1] - lefts[0]) - 44) <= 6
    assert all(b >= a - 1 for a, b in itertools.pairwise(lefts))


def test_landmarks_follow_the_face_between_detections(predictor):
    tracker = make_tracker(predictor, detect_every=100)
    first = tracker.update(frame_with_face(100, 60))[0].landmarks
    for step in range(1, 6):
        faces = tracker.update(frame_with_face(100 + 5 * step, 60))
    assert faces[0].box.source == "tracker"
    shift = (faces[0].landmarks - first).mean(axis=0)
    assert abs(shift[0] - 25) < 4 and abs(shift[1]) < 4


def test_face_leaving_drops_the_track_and_a_new_face_gets_a_new_id(predictor):
    tracker = make_tracker(predictor, detect_every=100)
    assert [f.id for f in tracker.update(frame_with_face(100, 60))] == [1]
    assert [f.id for f in tracker.update(frame_with_face(103, 60))] == [1]
    assert tracker.update(np.full((480, 640), 120, np.uint8)) == []
    assert tracker.lost == 1
    assert [f.id for f in tracker.update(frame_with_face(300, 200))] == [2]


def test_two_faces_get_two_ids_that_stay_with_them(predictor):
    small = cv2.resize(astronaut_gray()[FACE], (160, 176))  # the second face at 0.8x
    tracker = make_tracker(predictor, detect_every=3)

    def frame(dx: int) -> np.ndarray:
        image = frame_with_face(20 + dx, 20)
        image[230:406, 400 - dx : 560 - dx] = small
        return image

    first = tracker.update(frame(0))
    assert len(first) == 2 and {f.id for f in first} == {1, 2}
    left_id = min(first, key=lambda f: f.box.left).id
    for dx in range(2, 14, 2):
        faces = tracker.update(frame(dx))
        assert len(faces) == 2
        assert min(faces, key=lambda f: f.box.left).id == left_id
    assert tracker.detections >= 2


def test_detection_on_a_downscaled_frame_maps_boxes_back(predictor):
    big = np.kron(astronaut_gray()[FACE], np.ones((2, 2), np.uint8))[:440, :360]  # face ~180 px
    full = make_tracker(predictor, detect_every=1).update(frame_with_face(100, 20, big))
    half = make_tracker(predictor, detect_every=1, detect_scale=0.5).update(frame_with_face(100, 20, big))
    assert len(full) == 1 and len(half) == 1
    assert iou(full[0].box, half[0].box) > 0.7
    assert np.abs(full[0].landmarks - half[0].landmarks).mean() < 6


def test_min_face_size_and_max_faces(predictor):
    assert make_tracker(predictor, min_face_size=300).update(frame_with_face(100, 60)) == []
    image = frame_with_face(20, 20)
    image[230:450, 400:600] = astronaut_gray()[FACE]
    assert len(make_tracker(predictor, max_faces=1).update(image)) == 1


def test_bad_settings_are_rejected(predictor):
    with pytest.raises(ValueError, match="detect_every"):
        make_tracker(predictor, detect_every=0)
    with pytest.raises(ValueError, match="detect_scale"):
        make_tracker(predictor, detect_scale=1.5)


def test_match_boxes_pairs_by_overlap():
    a = FaceBox(0, 0, 100, 100, 1.0, "tracker")
    b = FaceBox(300, 0, 400, 100, 1.0, "tracker")
    near_b = FaceBox(305, 5, 405, 105, 1.0, "detector")
    far = FaceBox(600, 300, 650, 350, 1.0, "detector")
    assert match_boxes([a, b], [far, near_b], 0.3) == [(1, 1)]
    assert iou(a, a) == 1.0 and iou(a, far) == 0.0


def test_landmarks_carry_the_box_between_tracker_updates(predictor):
    """track_every=2: every other frame the box comes from the previous landmarks; id and box follow the face."""
    tracker = make_tracker(predictor, detect_every=100, track_every=2)
    sources, ids, lefts = [], set(), []
    for step in range(12):
        faces = tracker.update(frame_with_face(100 + 4 * step, 60))
        assert len(faces) == 1
        sources.append(faces[0].box.source)
        ids.add(faces[0].id)
        lefts.append(faces[0].box.left)
    assert ids == {1}
    assert sources[:4] == ["detector", "landmarks", "tracker", "landmarks"]
    assert tracker.detections == 1
    assert abs((lefts[-1] - lefts[0]) - 44) <= 8


def test_sweep_regions_cover_the_frame_with_enough_overlap():
    assert sweep_regions(640, 480, 1.0, 1) == [Region(0, 0, 640, 480, 1.0)]
    coarse, *strips = sweep_regions(640, 480, 1.0, 2)
    assert coarse == Region(0, 0, 640, 480, 0.5) and len(strips) == 2
    assert strips[0].x0 == 0 and strips[-1].x1 == 640 and all(s.y0 == 0 and s.y1 == 480 for s in strips)
    # faces under 160 px are the strips' job: any such face lies whole inside one strip
    assert strips[0].x1 - strips[1].x0 >= 160
    tall = sweep_regions(480, 640, 1.0, 3)[1:]  # portrait frames are cut across their height
    assert tall[0].y0 == 0 and tall[-1].y1 == 640 and all(a.y1 - b.y0 >= 160 for a, b in itertools.pairwise(tall))


def count_regions(tracker: FaceTracker) -> list[int]:
    """Wrap the tracker's detector so that each update's number of searched regions is recorded."""
    calls: list[int] = [0]
    search = tracker.detector.detect_prepared

    def counted(image, is_crop):
        calls[-1] += 1
        return search(image, is_crop)

    tracker.detector.detect_prepared = counted
    return calls


def test_a_tiled_sweep_finds_a_new_small_face_in_a_strip_one_region_per_frame(predictor):
    """With a face followed, a sweep searches one region per frame; a second ~90 px face (too small for the
    half-scale pass) that appears meanwhile is found by a strip. With no face followed, the whole frame is
    searched at once, so the first face is found on its first frame."""
    second = cv2.resize(astronaut_gray()[FACE], (200, 220))
    tracker = make_tracker(predictor, detect_every=5, detect_tiles=2)
    calls = count_regions(tracker)
    seen = []
    for step in range(9):
        calls.append(0)
        frame = frame_with_face(20 + 2 * step, 40)
        if step >= 3:
            frame[240:460, 400:600] = second
        seen.append(sorted(f.id for f in tracker.update(frame)))
    assert seen[0] == [1] and calls[1] == 1  # the first frame: one whole-frame search
    assert seen[1:6] == [[1]] * 5  # the sweep starts on frame 5 with the half-scale pass, which misses face 2
    assert seen[7:] == [[1, 2], [1, 2]]  # the strips found it
    assert max(calls[1:]) == 1 and sum(calls[1:]) == 4 and tracker.detections == 2


def test_a_tiled_sweep_finds_a_large_face_in_its_half_scale_pass_and_drops_a_face_that_left(predictor):
    big = np.kron(astronaut_gray()[FACE], np.ones((2, 2), np.uint8))[:440, :360]  # face ~180 px
    tracker = make_tracker(predictor, detect_every=4, detect_tiles=2)
    assert [f.id for f in tracker.update(frame_with_face(100, 20, big))] == [1]
    tracker.update(frame_with_face(102, 20, big))
    tracker.update(frame_with_face(104, 20, big))  # sweep over
    empty = np.full((480, 640), 120, np.uint8)
    for _ in range(4):  # tracking frames, then a new sweep that finds nothing in any region
        tracker.update(empty)
    for _ in range(3):
        faces = tracker.update(empty)
    assert faces == []


def test_a_jump_between_tracker_updates_is_not_carried_blindly(predictor):
    """track_every=5: frames between tracker updates are carried by landmarks, but a face that jumps (a cut, a
    dropped stretch of frames) fails the template check, so no box is left where the face was."""
    tracker = make_tracker(predictor, detect_every=100, track_every=5)
    assert [f.id for f in tracker.update(frame_with_face(60, 40))] == [1]
    moved = frame_with_face(380, 240)
    faces = tracker.update(moved)
    truth = FaceDetector(whole_image_fallback=False).detect(moved)[0]
    assert all(iou(face.box, truth) > 0.5 for face in faces)  # wherever a face is reported, it is the face
    for _ in range(3):  # the sweep that the loss started finds it again
        faces = tracker.update(moved)
    assert len(faces) == 1 and iou(faces[0].box, truth) > 0.5


def test_a_face_uncovered_after_a_jaw_box_keeps_its_box_and_id(predictor):
    """The landmark node's settings (track_every 5, tiled sweeps): a black box over the jaw for a few frames, then
    the clean face again. The template taken under the box once matched the uncovered face half a face lower and
    the box stayed there; now every frame's box stays on the face, under one id."""
    tracker = make_tracker(predictor, detect_every=15, detect_tiles=2, track_every=5)
    clean = frame_with_face(100, 60)
    truth = FaceDetector(whole_image_fallback=False).detect(clean)[0]
    covered = clean.copy()
    covered[truth.top + truth.height * 2 // 3 : truth.bottom + 10, truth.left - 5 : truth.right + 5] = 0
    for covered_frames in (1, 2, 4):
        frames = [clean] * 2 + [covered] * covered_frames + [clean] * 4
        faces = [tracker.update(frame) for frame in frames]
        assert [len(f) for f in faces] == [1] * len(frames)
        assert len({f[0].id for f in faces}) == 1
        assert all(abs(f[0].box.top - truth.top) <= 0.1 * truth.height for f in faces), [f[0].box for f in faces]


def test_new_detector_settings_take_effect_on_the_next_frame(predictor):
    """A face followed under the old settings that the new ones would not find is gone on the next frame.
    The face moves 6 px right and 3 px down a frame, so following it is tracking, not finding it in place."""
    params = {**defaults(LANDMARK_NODE_PARAMS), "detect_every": 100}
    tracker = make_tracker(predictor)
    tracker.apply_params(params)
    frames = (frame_with_face(100 + 6 * step, 60 + 3 * step) for step in itertools.count())
    followed = [tracker.update(next(frames)) for _ in range(3)]
    assert [[face.id for face in faces] for faces in followed] == [[1], [1], [1]]
    assert tracker.detections == 1  # found once, then followed: same face, same id
    for before, after in itertools.pairwise(faces[0].box for faces in followed):  # the box follows the face
        assert abs(after.left - before.left - 6) <= 3 and abs(after.top - before.top - 3) <= 3
    tracker.apply_params({**params, "min_face_size": 300})  # the ~90 px face is now too small
    assert tracker.update(next(frames)) == [] and tracker.detections == 2
    tracker.apply_params({**params, "detect_every": 50})  # tracking settings only: no new detection
    tracker.update(next(frames))
    assert tracker.detections == 3  # (no face followed, so that frame searched anyway)
    tracker.update(next(frames))
    assert tracker.detections == 3
