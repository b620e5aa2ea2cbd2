"""image_source_node over real rclpy + Fast DDS: folder and bag sources, ground truth, bad set-ups."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_helpers import Probe, start_node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from test_sources import pattern, write_bag

MODULE = "emotion_perception.ros.nodes.image_source_node"


def stamp_of(message: Image) -> tuple[int, int]:
    return message.header.stamp.sec, message.header.stamp.nanosec


def truth_records(messages: list[String]) -> dict[tuple[int, int], dict]:
    records = [json.loads(m.data) for m in messages]
    return {(r["stamp"]["sec"], r["stamp"]["nanosec"]): r for r in records}


@pytest.fixture
def probe(ros_context, request):
    namespace = "/" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    probe = Probe(ros_context, namespace, "source_probe")
    yield probe
    probe.destroy()


def test_folder_source_publishes_every_image_and_labels_with_equal_stamps(probe: Probe, tmp_path: Path):
    data = tmp_path / "data"
    for path, index in (("happy/a.png", 0), ("happy/b.png", 1), ("sadness/c.png", 2), ("loose.png", 3)):
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / path), pattern(index))
    (data / "happy" / "broken.png").write_text("not an image")
    images = probe.collect(Image, "image")
    truth = probe.collect(String, "ground_truth/emotion")
    node = start_node(MODULE, tmp_path, probe.node.get_namespace(), {
        "source": str(data), "rate": 20.0, "encoding": "mono8", "frame_id": "test_camera",
        "exit_when_done": True, "wait_for_subscribers": 1,
    })
    try:
        probe.spin_until(lambda: not node.alive(), 60)
        assert node.wait_exit(10) == 0, node.log()
        probe.spin_until(lambda: len(images) >= 4 and len(truth) >= 3, 5)
    finally:
        node.stop()
    assert len(images) == 4 and len(truth) == 3, node.log()
    records = truth_records(truth)
    assert sorted((r["file"], r["label"]) for r in records.values()) == [
        ("happy/a.png", "happy"), ("happy/b.png", "happy"), ("sadness/c.png", "sadness")]
    by_stamp = {stamp_of(m): m for m in images}
    assert set(records) <= set(by_stamp)  # each label carries the stamp of its image
    for stamp, record in records.items():
        message = by_stamp[stamp]
        assert (message.encoding, message.header.frame_id) == ("mono8", "test_camera")
        pixels = np.frombuffer(bytes(message.data), np.uint8).reshape(message.height, message.width)
        assert np.array_equal(pixels, cv2.cvtColor(cv2.imread(str(data / record["file"])), cv2.COLOR_BGR2GRAY))
    log = node.log()
    assert "skipped" in log and "broken.png" in log and "source finished after 4 frames" in log


def test_bag_source_replays_original_stamps_frame_ids_and_ground_truth(probe: Probe, tmp_path: Path):
    stamps = write_bag(tmp_path / "bag")
    images = probe.collect(Image, "image")
    truth = probe.collect(String, "ground_truth/emotion")
    node = start_node(MODULE, tmp_path, probe.node.get_namespace(), {
        "source_type": "bag", "source": str(tmp_path / "bag"), "rate_factor": 20.0, "exit_when_done": True,
        "wait_for_subscribers": 1,
    })
    try:
        probe.spin_until(lambda: not node.alive(), 60)
        assert node.wait_exit(10) == 0, node.log()
        probe.spin_until(lambda: len(images) >= 3 and len(truth) >= 2, 5)
    finally:
        node.stop()
    assert [stamp_of(m) for m in images] == [divmod(s, 1_000_000_000) for s in stamps]
    assert {m.header.frame_id for m in images} == {"cam"}
    first = np.frombuffer(bytes(images[0].data), np.uint8).reshape(60, 80, 3)
    assert images[0].encoding == "bgr8" and np.array_equal(first, pattern(0))
    records = truth_records(truth)
    assert {stamp: r["label"] for stamp, r in records.items()} == {
        divmod(stamps[0], 1_000_000_000): "happy", divmod(stamps[1], 1_000_000_000): "fear"}


@pytest.mark.parametrize(("params", "expected"), [
    ({"source": "/nonexistent/frames"}, "cannot open the source: /nonexistent/frames: not a directory"),
    ({"source_type": "bag", "source": "/nonexistent/bag"}, "/nonexistent/bag: no such bag"),
    ({"source_type": "usb"}, "source_type must be one of folder, video, camera, bag, got 'usb'"),
    ({"rate": 0.0}, "rate"),
    ({"encoding": "rgba8", "wait_for_subscribers": 500}, "encoding must be one of bgr8, mono8, rgb8"),
])
def test_bad_set_up_exits_with_status_2_and_names_the_cause(tmp_path: Path, params: dict, expected: str):
    node = start_node(MODULE, tmp_path, "/bad_setup", params)
    try:
        assert node.wait_exit(30) == 2
    finally:
        node.stop()
    errors = [line for line in node.log().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and expected in errors[0], node.log()
    if "wait_for_subscribers" in params:
        assert "wait_for_subscribers" in errors[0]  # every bad value is named at once


def set_parameter(probe: Probe, node_name: str, name: str, value: ParameterValue) -> tuple[bool, str]:
    request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=value)])
    result = probe.call(SetParameters, f"{node_name}/set_parameters", request, timeout=20.0,
                        resend_every=3.0).results[0]
    return result.successful, result.reason


def test_run_time_parameter_changes_are_checked(probe: Probe, tmp_path: Path):
    images = probe.collect(Image, "image")
    node = start_node(MODULE, tmp_path, probe.node.get_namespace(), {"rate": 5.0, "loop": True})
    name = f"{probe.node.get_namespace()}/image_source_node"
    try:
        assert probe.spin_until(lambda: len(images) >= 1, 60), node.log()
        double = ParameterType.PARAMETER_DOUBLE
        assert set_parameter(probe, name, "rate", ParameterValue(type=double, double_value=50.0)) == (True, "")
        ok, reason = set_parameter(probe, name, "rate", ParameterValue(type=double, double_value=0.0))
        assert not ok and "rate out of range" in reason
        ok, reason = set_parameter(probe, name, "source", ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value="/tmp"))
        assert not ok and "source cannot change at run time" in reason
        assert node.alive()
    finally:
        node.stop()
