"""landmark_emotion_node over real rclpy + Fast DDS: the node runs as a subprocess with --ros-args, a
probe node publishes frames and collects emotion, emotion/detail, debug images and /diagnostics."""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest
import skimage.data
from face_images import astronaut_gray, happy_frame
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_helpers import ClassifierSession, detail_for, image_msg, raw_image, start_node
from rosgraph_msgs.msg import Clock

from emotion_perception.core import occlusion
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.pipeline import FaceAnalyzer

MODULE = "emotion_perception.ros.nodes.landmark_emotion_node"
NODE = "landmark_emotion_node"


def open_session(context, tmp_path, namespace: str, params: dict) -> ClassifierSession:
    """This node in `namespace` with `params`, and a probe talking to it."""
    return ClassifierSession(context, tmp_path, namespace, params, MODULE, NODE)


@pytest.fixture(scope="module")
def node(ros_context, tmp_path_factory):
    session = open_session(ros_context, tmp_path_factory.mktemp("landmark_node"), "/lm_main", {
        "reliability": "reliable", "diagnostics_period": 0.2, "max_image_pixels": 9_000_000,
    })
    session.probe.wait_for_subscribers(session.images)
    yield session
    session.close()


def test_happy_face_gives_happy_with_the_source_stamp_and_frame_id(node):
    detail = node.answer(happy_frame(), frame_id="head_camera_optical")
    assert detail["version"] == 2 and detail["frame_id"] == "head_camera_optical"
    assert detail["model"].startswith("landmark_forest")
    assert detail["image"] == {"width": 640, "height": 480}
    assert len(detail["faces"]) == 1
    face = detail["faces"][0]
    assert face["label"] == "happy" and face["confidence"] == max(face["scores"].values())
    assert set(face["scores"]) >= {"happy", "neutral", "surprise"}
    x, y, w, _h = face["box"]
    assert 200 < x < 300 and 60 < y < 120 and 60 < w < 130
    assert "landmarks" not in face and isinstance(face["id"], int)
    assert detail["latency_ms"] is not None and detail["processing_ms"] > 0
    assert node.probe.spin_until(lambda: any(m.data == "happy" for m in node.emotions), 5)


def test_each_face_says_what_covers_it_and_the_diagnostics_count_the_flagged(node):
    """The tamper check in emotion/detail: the clean astronaut has occlusion scores and no flag; a black box over
    her mouth and jaw (drawn from her landmarks) is flagged as a covered lower face, and /diagnostics counts it.
    (A drawn surgical mask hides this face from dlib's detector altogether: no face, nothing to flag.)"""
    clean = cv2.cvtColor(happy_frame(), cv2.COLOR_BGR2GRAY)
    [face] = node.answer(clean)["faces"]
    assert set(face["occlusion"]) == {"upper", "lower"} and face["tampered"]["flag"] is False
    before = int(node.wait_diag(lambda d: "tampered_faces" in d)["tampered_faces"])
    [found] = FaceAnalyzer(FaceDetector(upsample=1)).analyze(clean)
    masked = occlusion.occlude(clean, found.landmarks, "lower_box", np.random.default_rng(0), fill=0)
    [face] = node.answer(masked)["faces"]
    assert face["tampered"]["flag"] is True and face["occlusion"]["lower"] > face["occlusion"]["upper"]
    assert any("lower" in reason for reason in face["tampered"]["reasons"]), face["tampered"]
    node.wait_diag(lambda d: int(d["tampered_faces"]) > before)


def test_face_keeps_its_id_over_frames(node):
    """The face moves 6 px right a frame: the node follows it (one id) and its box moves with it."""
    faces = [node.answer(happy_frame(shift=6 * step))["faces"] for step in range(6)]
    assert [len(f) for f in faces] == [1] * 6
    assert len({f[0]["id"] for f in faces}) == 1, [(f[0]["id"], f[0]["box"], f[0]["label"]) for f in faces]
    lefts = [f[0]["box"][0] for f in faces]
    assert all(abs(b - a - 6) <= 3 for a, b in itertools.pairwise(lefts)), lefts


def test_valid_unusual_encodings_and_a_4k_frame_are_processed(node):
    rgb = np.ascontiguousarray(happy_frame()[:, :, ::-1])
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    mono16 = cv2.cvtColor(happy_frame(), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    for encoding, pixels in (("rgba8", rgba), ("mono16", mono16)):
        sec = node.next_stamp()
        msg = raw_image(encoding, 480, 640, pixels.strides[0], pixels.tobytes(), sec)
        assert node.send_until(msg, lambda s=sec: detail_for(node.details, s) is not None), encoding
        assert [f["label"] for f in detail_for(node.details, sec)["faces"]] == ["happy"], encoding
    # 3840x2160 (4K UHD): processed at reduced width, box published in the 4K frame's pixels
    frame = np.full((2160, 3840), 120, np.uint8)
    frame[100:2148, 800:2848] = cv2.resize(astronaut_gray(), (2048, 2048))
    detail = node.answer(frame, timeout=30)
    assert detail["image"] == {"width": 3840, "height": 2160}
    [face] = detail["faces"]
    assert face["label"] == "happy"
    x, _y, w, _h = face["box"]
    assert 800 + 4 * 150 < x < 800 + 4 * 210 and 250 < w < 520


def test_bad_frames_are_counted_and_the_node_keeps_answering(node):
    good = cv2.cvtColor(happy_frame(), cv2.COLOR_BGR2GRAY)
    bad = {
        "unsupported encoding": raw_image("yuv_made_up", 4, 4, 4, bytes(16), 1),
        "empty frame": raw_image("mono8", 0, 0, 0, b"", 1),
        "step": raw_image("bgr8", 480, 640, 640, good.tobytes(), 1),  # step < width * 3
        "data holds": raw_image("mono8", 480, 640, 640, good.tobytes()[:-640], 1),
        "exceeds the limit": raw_image("mono8", 3000, 3100, 3100, bytes(3000 * 3100), 1),
    }
    for reason, msg in bad.items():
        before = int(node.wait_diag(lambda d: True)["bad_frames"])
        reported = node.send_until(
            msg, lambda b=before, r=reason: int(node.diag()["bad_frames"]) > b and r in node.diag()["last_error"])
        assert reported, f"bad frame ({reason}) not reported; diagnostics {node.diag()}"
        assert node.process.alive()
    diag = node.diag()
    assert int(diag["bad_frames"]) >= len(bad)
    assert [f["label"] for f in node.answer(happy_frame())["faces"]] == ["happy"]


def test_frames_faster_than_processing_are_dropped_and_the_newest_is_answered(node):
    # slower processing: detection with up-sampling on every frame (~0.1 s a frame)
    assert all(r.successful for r in node.set_parameters(detect_every=1, upsample=1))
    frame = happy_frame()
    first = node.next_stamp()
    for _ in range(40):  # ~200 frames/s: each reaches the node, which cannot keep up and drops the older
        node.send(image_msg(frame, node.next_stamp()))
        time.sleep(0.005)
    last = node._stamp
    assert node.probe.spin_until(lambda: detail_for(node.details, last, 0) is not None, 30), node.process.log()
    answered = sum(detail_for(node.details, s, 0) is not None for s in range(first + 1, last + 1))
    assert answered < 40
    diag = node.wait_diag(lambda d: int(d["dropped_frames"]) > 0)
    assert int(diag["dropped_frames"]) + int(diag["processed_frames"]) <= int(diag["received_frames"])
    assert all(r.successful for r in node.set_parameters(detect_every=15, upsample=0))


def test_run_time_parameters_are_validated_and_take_effect(node):
    [bad_range] = node.set_parameters(detect_every=500)
    assert not bad_range.successful and "detect_every" in bad_range.reason
    [bad_choice] = node.set_parameters(upsample=9)
    assert not bad_choice.successful and "upsample" in bad_choice.reason
    [structural] = node.set_parameters(reliability="best_effort")
    assert not structural.successful and "configure" in structural.reason
    assert node.answer(happy_frame())["faces"][0].get("landmarks") is None
    results = node.set_parameters(publish_landmarks=True, publish_debug_image=True)
    assert all(r.successful for r in results), [r.reason for r in results]
    detail = node.answer(happy_frame())
    points = np.array(detail["faces"][0]["landmarks"])
    x, _y, w, _h = detail["faces"][0]["box"]
    assert points.shape == (68, 2)
    assert (points[:, 0] > x - 15).all() and (points[:, 0] < x + w + 15).all()
    stamp = detail["stamp"]
    assert node.probe.spin_until(
        lambda: any(m.header.stamp.sec == stamp["sec"] for m in node.debug), 10)
    debug = next(m for m in node.debug if m.header.stamp.sec == stamp["sec"])
    assert (debug.encoding, debug.width, debug.height) == ("bgr8", 640, 480)
    assert node.set_parameters(publish_landmarks=False, publish_debug_image=False)[0].successful


def test_explain_adds_the_fired_rule_of_the_label_to_each_face(node):
    from emotion_perception.models.rules import RuleSet

    assert "rule" not in node.answer(happy_frame())["faces"][0]
    assert node.set_parameters(explain=True)[0].successful
    faces = node.answer(happy_frame())["faces"]
    assert len(faces) == 1, [(f["id"], f["box"], f["box_source"]) for f in faces]
    [face] = faces
    assert face["label"] == "happy"
    rule = face["rule"]
    assert rule is not None and rule["text"].endswith("→ happy"), face
    shipped = {r.text(): r for r in RuleSet.load().rules["happy"]}
    assert rule["text"] in shipped and rule["precision"] == round(shipped[rule["text"]].precision, 4)
    assert rule["conditions"] == [c.to_json() for c in shipped[rule["text"]].conditions]
    assert node.set_parameters(explain=False)[0].successful
    assert "rule" not in node.answer(happy_frame())["faces"][0]


def test_bad_start_parameters_are_rejected_with_a_reason(tmp_path):
    for params, words in (
        ({"detect_every": 0}, ["detect_every", "range"]),
        ({"reliability": "sometimes"}, ["reliability", "best_effort"]),
        ({"model_path": str(tmp_path / "missing.npz")}, ["model_path", "no such file"]),
    ):
        process = start_node(MODULE, tmp_path, "/lm_bad", params)
        assert process.wait_exit(30) == 2
        log = process.log()
        assert all(word in log for word in words), log


def test_lifecycle_without_autostart_and_sim_time(ros_context, tmp_path):
    session = open_session(ros_context, tmp_path, "/lm_life", {"autostart": False, "use_sim_time": True})
    try:
        probe = session.probe
        clock = probe.publisher(Clock, "/clock", reliable=True, depth=1)
        now = Clock()
        now.clock.sec = 5000

        def get_state() -> str:
            return probe.call(GetState, f"{NODE}/get_state", GetState.Request(), timeout=30,
                              resend_every=3.0).current_state.label

        assert get_state() == "unconfigured"
        session.send(image_msg(happy_frame(), 4999))
        probe.spin_for(1.0)
        assert session.details == [] and session.emotions == []
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            response = probe.call(ChangeState, f"{NODE}/change_state",
                                  ChangeState.Request(transition=Transition(id=transition)), timeout=30)
            assert response.success
        assert get_state() == "active"
        session.probe.wait_for_subscribers(session.images)
        # the node's clock follows /clock: latency = clock - stamp = 5000 s - 4999.5 s
        grey = np.full((480, 640), 120, np.uint8)
        msg = image_msg(grey, 4999, 500_000_000)
        assert probe.spin_until(lambda: detail_for(session.details, 4999, 500_000_000) is not None, 20,
                                lambda: (clock.publish(now), session.send(msg)))
        detail = detail_for(session.details, 4999, 500_000_000)
        assert detail["faces"] == []
        assert detail["latency_ms"] == pytest.approx(500.0, abs=1.0)
        assert session.emotions == []
        camera = skimage.data.camera()
        assert session.answer(camera)["faces"] == []
        assert session.emotions == []
        assert [f["label"] for f in session.answer(happy_frame())["faces"]] == ["happy"]
        assert probe.spin_until(lambda: [m.data for m in session.emotions] == ["happy"], 5)
    finally:
        session.close()
