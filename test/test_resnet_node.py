"""resnet_emotion_node over real rclpy + Fast DDS: the node runs as a subprocess with --ros-args, a probe
publishes frames and collects emotion_resnet, emotion_resnet/detail and /diagnostics."""

from __future__ import annotations

import time

import numpy as np
import pytest
from face_images import happy_frame, two_faces
from ros_helpers import ClassifierSession, detail_for, image_msg, raw_image, set_parameters, start_node

MODULE = "emotion_perception.ros.nodes.resnet_emotion_node"
NODE = "resnet_emotion_node"


def open_session(context, tmp_path, namespace: str, params: dict) -> ClassifierSession:
    """This node in `namespace` with `params`, and a probe talking to it."""
    return ClassifierSession(context, tmp_path, namespace, params, MODULE, NODE, "emotion_resnet")


@pytest.fixture(scope="module")
def node(ros_context, tmp_path_factory):
    session = open_session(ros_context, tmp_path_factory.mktemp("resnet_node"), "/rn_main", {
        "reliability": "reliable", "diagnostics_period": 0.2, "device": "cuda", "cpu_threads": 1,
    })
    session.probe.wait_for_subscribers(session.images, timeout=60)
    yield session
    session.close()


def test_happy_face_gives_happy_on_the_resnet_topics_with_stamp_and_frame_id(node):
    detail = node.answer(happy_frame(), frame_id="head_camera_optical")
    assert detail["version"] == 2 and detail["frame_id"] == "head_camera_optical"
    assert detail["model"].startswith("cnn_small_resnet")
    [face] = detail["faces"]
    assert face["label"] == "happy" and face["confidence"] == max(face["scores"].values())
    assert set(face["scores"]) == {"anger", "contempt", "disgust", "fear", "happy", "neutral", "sadness",
                                   "surprise"}
    x, y, w, _h = face["box"]
    assert 200 < x < 300 and 60 < y < 120 and 60 < w < 130
    assert node.probe.spin_until(lambda: any(m.data == "happy" for m in node.emotions), 5)


def test_cuda_request_without_gpu_falls_back_to_cpu_with_a_log_line(node):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: no fallback to observe")
    assert "CUDA was requested but is not available" in node.process.log()
    assert node.probe.spin_until(lambda: (d := node.diag()) is not None and d["device"] == "cpu", 10)


def test_every_face_of_a_frame_is_scored_and_an_empty_frame_has_no_faces(node):
    detail = node.answer(np.dstack([two_faces()] * 3))
    assert len(detail["faces"]) == 2
    assert detail["faces"][0]["box"][2] > detail["faces"][1]["box"][2]  # largest first
    assert node.answer(np.full((240, 320, 3), 90, np.uint8))["faces"] == []


def test_bad_frame_is_reported_and_the_node_keeps_answering(node):
    bad = raw_image("yuv_made_up", 4, 4, 4, bytes(16), 1)

    def reported() -> bool:
        node.images.publish(bad)
        return (d := node.diag()) is not None and int(d["bad_frames"]) > 0

    assert node.probe.spin_until(reported, 20), node.diag()
    assert node.process.alive()
    assert [f["label"] for f in node.answer(happy_frame())["faces"]] == ["happy"]


def test_run_time_parameters_take_effect_and_bad_values_are_refused(node):
    [bad] = set_parameters(node.probe, NODE, max_faces=0)
    assert not bad.successful and "max_faces" in bad.reason
    [structural] = set_parameters(node.probe, NODE, device="cpu")
    assert not structural.successful and "configure" in structural.reason
    assert all(r.successful for r in set_parameters(node.probe, NODE, publish_debug_image=True))
    stamp = node.answer(happy_frame())["stamp"]
    assert node.probe.spin_until(lambda: any(m.header.stamp.sec == stamp["sec"] for m in node.debug), 10)
    debug = next(m for m in node.debug if m.header.stamp.sec == stamp["sec"])
    assert (debug.encoding, debug.width, debug.height, debug.header.frame_id) == ("bgr8", 640, 480, "camera")
    assert set_parameters(node.probe, NODE, publish_debug_image=False)[0].successful


def test_frames_faster_than_processing_are_dropped_and_the_newest_is_answered(node):
    assert all(r.successful for r in set_parameters(node.probe, NODE, detect_every=1, detect_tiles=1, upsample=1))
    frame = happy_frame()
    stamps = [node.next_stamp() for _ in range(40)]
    for sec in stamps:  # far faster than detection with up-sampling on every frame
        node.send(image_msg(frame, sec, 7))
        time.sleep(0.005)
    last = stamps[-1]
    assert node.probe.spin_until(lambda: detail_for(node.details, last, 7) is not None, 30), node.process.log()
    answered = sum(detail_for(node.details, s, 7) is not None for s in stamps)
    assert answered < 40
    assert node.probe.spin_until(lambda: (d := node.diag()) is not None and int(d["dropped_frames"]) > 0, 10)
    assert all(r.successful for r in set_parameters(node.probe, NODE, detect_every=15, detect_tiles=2, upsample=0))


def test_bad_start_parameters_are_rejected_with_a_reason(tmp_path):
    for params, words in (
        ({"device": "tpu"}, ["device", "auto"]),
        ({"model_path": str(tmp_path / "missing.pt")}, ["model_path", "no such file"]),
    ):
        process = start_node(MODULE, tmp_path, "/rn_bad", params)
        assert process.wait_exit(60) == 2
        log = process.log()
        assert all(word in log for word in words), log


def test_corrupt_weights_fail_configure_with_the_file_named(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"garbage")
    process = start_node(MODULE, tmp_path, "/rn_corrupt", {"model_path": str(broken)})
    assert process.wait_exit(60) == 1
    assert "broken.pt" in process.log() and "not a readable" in process.log()
