"""Reliability of the per-frame logic, without ROS: lost frames estimated from stamps, diagnostics that recover,
the frame-size limit of the DDS profile, bad frames told apart from their fields alone, and no phantom faces."""

from __future__ import annotations

import numpy as np
import pytest
from face_images import happy_frame
from reliability_faces import count_phantoms, node_tracker
from reliability_nodes import demo_frames, fuzz_frames

from emotion_perception.core.errors import FrameError
from emotion_perception.core.frames import check_frame
from emotion_perception.core.images import to_gray_u8
from emotion_perception.core.params import defaults
from emotion_perception.core.pipeline import classify_camera_frame
from emotion_perception.core.stream import FAILURE_WARN_S, FrameSizeWatch, LostFrames, health
from emotion_perception.ros.env import dds_profile, shm_segment_bytes
from emotion_perception.ros.params import LANDMARK_NODE_PARAMS

START = 1_700_000_000 * 10**9


def stamps(count: int, hz: float, jitter_s: float = 0.0, seed: int = 0) -> np.ndarray:
    """A steady camera's stamps (ns), each late by up to `jitter_s`."""
    rng = np.random.default_rng(seed)
    return START + np.round((np.arange(count) / hz + rng.uniform(0, jitter_s, count)) * 1e9).astype(np.int64)


def lost_of(received: np.ndarray) -> LostFrames:
    estimate = LostFrames()
    for stamp in received:
        estimate.add(int(stamp))
    return estimate


@pytest.mark.parametrize(("hz", "jitter", "loss"), [(30, 0.0, 0.05), (120, 0.0025, 0.11), (30, 0.011, 0.3),
                                                    (15, 0.02, 0.0)])
def test_reliability_lost_frames_are_estimated_from_the_stamps(hz, jitter, loss):
    """Random losses (and a frame lost in the warm-up) under stamp jitter of up to a third of the period."""
    published = stamps(20_000, hz, jitter)
    keep = np.random.default_rng(1).random(len(published)) >= loss
    keep[[0, -1]] = True
    keep[5] = False
    estimate = lost_of(published[keep])
    assert estimate.lost == (~keep).sum() and estimate.restarts == 0
    assert estimate.period_s == pytest.approx(1 / hz, rel=1e-3)


def test_reliability_lost_frames_ignore_repeats_pauses_replays_and_rate_changes():
    steady = stamps(100, 30)
    repeated = np.repeat(steady, 2)  # every frame sent twice
    assert lost_of(repeated).lost == 0
    paused = np.concatenate([steady, steady[-1] + 5 * 10**9 + (steady - steady[0])])  # 5 s without frames
    assert lost_of(paused).lost == 0 and lost_of(paused).restarts == 1
    replayed = np.concatenate([steady, steady])  # a bag played again from its start
    assert lost_of(replayed).lost == 0
    slower = np.concatenate([steady, steady[-1] + (steady[1::2] - steady[0]) * 2 + 10**9 // 15])  # 30 -> 15 Hz
    assert lost_of(slower).lost == 0
    faster = np.concatenate([steady, steady[-1] + (steady[:100] - steady[0]) // 2 + 10**9 // 60])  # 30 -> 60 Hz
    assert lost_of(faster).lost == 0
    burst = np.delete(stamps(400, 30), np.s_[200:245])  # 45 frames (1.5 s) lost at once
    assert lost_of(burst).lost == 45



def test_reliability_a_reader_too_slow_for_every_frame_counts_what_it_missed():
    """A starved reader takes one frame in 2 to 4 for a long stretch: gaps of varying size, not a slower camera."""
    published = stamps(2_000, 400)
    gaps = np.random.default_rng(2).integers(2, 5, len(published))
    taken = np.concatenate([np.arange(100), 100 + np.cumsum(gaps[:300]), np.arange(1_500, 2_000)])
    taken = taken[taken < len(published)]
    estimate = lost_of(published[taken])
    assert estimate.lost == len(published) - len(taken)

def test_reliability_diagnostics_warn_for_a_while_after_a_bad_frame_then_recover():
    ok, message = health("active", 0.1, 5.0, 2.0, 3, "640x480 'yuv': unsupported encoding")
    assert not ok and "3 bad frame(s)/error(s)" in message and "unsupported encoding" in message
    ok, message = health("active", 0.1, 5.0, FAILURE_WARN_S + 0.1, 3, "640x480 'yuv': unsupported encoding")
    assert ok and "3 bad frame(s)/error(s) so far" in message
    assert health("active", 0.1, 5.0, None, 0, "") == (True, "processing")
    assert not health("active", 6.0, 5.0, None, 0, "")[0] and not health("inactive", 0.1, 5.0, None, 0, "")[0]


def test_reliability_frames_near_the_shared_memory_segment_are_warned_about_once():
    assert shm_segment_bytes({"FASTRTPS_DEFAULT_PROFILES_FILE": str(dds_profile(localhost=False))}) == 32 * 2**20
    assert shm_segment_bytes({"FASTDDS_DEFAULT_PROFILES_FILE": str(dds_profile(localhost=True))}) == 32 * 2**20
    assert shm_segment_bytes({}) == 512 * 1024  # Fast DDS's own
    assert shm_segment_bytes({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) is None
    watch = FrameSizeWatch(32 * 2**20)
    assert watch.check(640 * 480 * 3, "a frame") is None
    warning = watch.check(4096 * 4096 * 3, "a 4096x4096 bgr8 frame")
    assert "48.0 MiB, larger than the 32 MiB shared-memory segment" in warning
    assert watch.check(4096 * 4096 * 3, "again") is None
    assert "near the size of" in FrameSizeWatch(32 * 2**20).check(3840 * 2160 * 3 + 2**20, "a 4K frame")


def test_reliability_bad_frames_are_told_apart_by_their_fields_alone():
    """Every fuzzed frame the harness calls malformed is refused by check_frame, and every other one accepted."""
    wrong = []
    for fields in fuzz_frames(20_000, seed=3):
        try:
            check_frame(fields.encoding, fields.height, fields.width, fields.step, len(fields.data), 16_777_216)
            refused = False
        except FrameError:
            refused = True
        if refused != fields.malformed:
            wrong.append(fields.kind)
    assert wrong == []


@pytest.fixture(scope="module")
def model():
    from emotion_perception.models.landmark_model import EmotionModel

    return EmotionModel.load()


def test_reliability_a_weak_intermittent_false_face_gets_no_id(model):
    """The reported fault: a false face scoring 0.08 in a quarter of the searches; with the node's defaults it is
    never published, with confirm_detections 1 (every detection at once, as before) it comes and goes."""
    params = defaults(LANDMARK_NODE_PARAMS)
    frames = demo_frames("mono8")[:2]
    confirmed = count_phantoms(frames, 300, params, model, hold=30, phantom_rate=0.25, noise=2.0)
    assert confirmed["phantom_ids"] == 0
    assert confirmed["frames_with_a_real_face_published"] == confirmed["frames_showing_a_real_face"]
    every = count_phantoms(frames, 300, {**params, "confirm_detections": 1}, model, hold=30, phantom_rate=0.25,
                           noise=2.0)
    assert every["phantom_ids"] >= 5


def test_reliability_a_weak_real_face_is_published_after_its_confirmations(model):
    """The astronaut's face scores about 1.4: taken as weak (min_detection_score 3), it is published from its
    confirm_detections-th frame on, under one id; with confirm_detections 0 never; detecting on every frame (each
    frame on its own, as bag evaluate) at once."""
    gray = to_gray_u8(happy_frame())
    params = {**defaults(LANDMARK_NODE_PARAMS), "min_detection_score": 3.0, "confirm_detections": 4}
    tracker = node_tracker(params)
    ids = [classify_camera_frame(tracker, model, gray, 1280)[0] for _ in range(20)]
    assert ids[:3] == [[], [], []] and all(len(i) == 1 for i in ids[3:]) and len({i[0] for i in ids[3:]}) == 1
    never = node_tracker({**params, "confirm_detections": 0})
    assert all(classify_camera_frame(never, model, gray, 1280)[0] == [] for _ in range(20))
    each_frame_alone = node_tracker({**params, "detect_every": 1, "detect_tiles": 1})  # as bag evaluate
    assert len(classify_camera_frame(each_frame_alone, model, gray, 1280)[0]) == 1
