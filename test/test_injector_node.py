"""adversarial_injector_node over real rclpy + Fast DDS: the node runs as a subprocess with --ros-args, a probe
publishes frames on `image` and collects `image_attacked` and `attack/info`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from face_images import astronaut_bgr, astronaut_gray
from ros_helpers import Probe, image_msg, raw_image, set_parameters, start_node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from emotion_perception import attacks
from emotion_perception.core.frames import decode_frame
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.models.cnn import build_model, save_cnn

MODULE = "emotion_perception.ros.nodes.adversarial_injector_node"
NODE = "adversarial_injector_node"


def frame_bgr() -> np.ndarray:
    """400x300 BGR frame with the astronaut's face (~90 px). Frames stay below Fast DDS's 512 KiB shared-memory
    segment: larger ones go over fragmented UDP, which drops and retransmits for seconds on a busy machine."""
    return np.ascontiguousarray(astronaut_bgr()[60:360, 56:456])


class Injector:
    """The node in its own namespace and a probe talking to it."""

    def __init__(self, context, tmp_path, namespace: str, params: dict) -> None:
        self.process = start_node(MODULE, tmp_path, namespace, params)
        self.probe = Probe(context, namespace)
        self.images = self.probe.publisher(Image, "image", reliable=True, depth=1)
        self.attacked = self.probe.collect(Image, "image_attacked")
        self.info = self.probe.collect(String, "attack/info")
        self.stamp = 100

    def send(self, msg: Image, timeout: float = 30.0) -> tuple[Image, dict]:
        """Publish `msg` (again every 0.5 s, best-effort style) until its attacked frame and info arrive."""
        sec, nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
        last = [0.0]

        def found() -> bool:
            return self.output(sec, nanosec) is not None

        def republish() -> None:
            import time

            if time.monotonic() - last[0] > 0.5:
                self.images.publish(msg)
                last[0] = time.monotonic()

        assert self.probe.spin_until(found, timeout, republish), f"no output for {sec}; log:\n{self.process.log()}"
        return self.output(sec, nanosec)

    def output(self, sec: int, nanosec: int) -> tuple[Image, dict] | None:
        image = next((m for m in self.attacked if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, nanosec)),
                     None)
        info = next((d for d in map(lambda m: json.loads(m.data), self.info)
                     if d["stamp"] == {"sec": sec, "nanosec": nanosec}), None)
        return None if image is None or info is None else (image, info)

    def frame(self, image: np.ndarray) -> Image:
        self.stamp += 1
        return image_msg(image, self.stamp, 77, "camera_optical")

    def set(self, **values) -> list:
        """Set parameters through the node's service; the list of SetParametersResult."""
        return list(set_parameters(self.probe, NODE, **values))

    def close(self) -> None:
        self.probe.destroy()
        self.process.stop()


@pytest.fixture
def injector(ros_context, tmp_path, request):
    made: list[Injector] = []

    def make(namespace: str, params: dict) -> Injector:
        made.append(Injector(ros_context, tmp_path, namespace, params))
        return made[-1]

    yield make
    for node in made:
        node.close()


def pixels(msg: Image) -> np.ndarray:
    return decode_frame(msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data))[0]


def test_none_passes_frames_bit_exact_then_attacks_switch_on_at_run_time(injector):
    node = injector("/inj_none", {})
    rgb = raw_image("rgb8", 4, 6, 24, bytes(range(72)), 0)
    for msg in (node.frame(astronaut_gray()[:200, :300]), node.frame(frame_bgr()), rgb):
        if msg is rgb:
            node.stamp += 1
            msg.header.stamp.sec, msg.header.stamp.nanosec = node.stamp, 5
        out, info = node.send(msg)
        assert (out.encoding, out.height, out.width, out.step, out.is_bigendian) == \
            (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian)
        assert bytes(out.data) == bytes(msg.data) and out.header.frame_id == msg.header.frame_id
        assert info["attack"] == "none" and info["applied"] is False and info["linf"] == 0

    assert all(r.successful for r in node.set(attack="gaussian", noise_sigma=0.1, seed=3))
    msg = node.frame(frame_bgr())
    out, info = node.send(msg)
    before, after = pixels(msg), pixels(out)
    assert out.encoding == "bgr8" and out.header.frame_id == "camera_optical"
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (msg.header.stamp.sec, 77)
    assert info["applied"] is True and info["params"] == {"noise_sigma": 0.1, "fraction": 1.0, "seed": 3}
    size = attacks.change_size(before, after)
    assert info["linf"] == pytest.approx(size["linf"], abs=1e-6) and info["l2"] == pytest.approx(size["l2"], rel=1e-5)
    assert 0.08 < float(np.std((after.astype(float) - before)[(before > 40) & (before < 215)])) / 255 < 0.12


def test_bad_parameter_changes_are_rejected_and_the_node_keeps_working(injector):
    node = injector("/inj_bad", {"attack": "salt_pepper", "noise_amount": 0.2})
    cases = {
        "attack": "blur", "epsilon": 2.0, "fraction": -0.1, "box_fill": "pink", "target_image": "/no/such.png",
        "reliability": "reliable",
    }
    for name, value in cases.items():
        (result,) = node.set(**{name: value})
        assert not result.successful and name in result.reason, (name, result.reason)
    (result,) = node.set(attack="scaling")
    assert not result.successful and "target_image" in result.reason
    (result,) = node.set(epsilon=1)  # an integer for a float parameter, as rclpy refuses it
    assert not result.successful
    out, info = node.send(node.frame(astronaut_gray()))
    changed = pixels(out) != astronaut_gray()
    assert info["attack"] == "salt_pepper" and info["applied"] and 0.18 < changed.mean() < 0.22


def test_eye_boxes_cover_the_eyes_of_the_live_frame(injector):
    node = injector("/inj_eyes", {"attack": "eye_boxes", "box_fill": "white"})
    frame = frame_bgr()
    out, info = node.send(node.frame(frame))
    points = FaceAnalyzer().analyze(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))[0].landmarks
    boxes = attacks.eye_rectangles(points, frame.shape, 0.25)
    after = pixels(out)
    assert info["applied"] and info["faces"] == 1 and info["params"]["eye_margin"] == 0.25
    for x0, y0, x1, y1 in boxes:
        assert np.all(after[y0:y1, x0:x1] == 255)
    keep = np.ones(frame.shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        keep[y0:y1, x0:x1] = False
    assert np.array_equal(after[keep], frame[keep])
    blank = np.full((240, 320, 3), 90, np.uint8)
    out, info = node.send(node.frame(blank))
    assert not info["applied"] and info["reason"] == "no face found" and bytes(out.data) == blank.tobytes()


def test_fgsm_with_a_model_file_stays_within_epsilon(injector, tmp_path):
    model = tmp_path / "cnn.pt"
    save_cnn(model, build_model("small_resnet", 3, 48),
             {"arch": "small_resnet", "labels": ["happy", "neutral", "sadness"], "input_size": 48, "mean": 0.5,
              "std": 0.25})
    node = injector("/inj_fgsm", {"attack": "fgsm", "epsilon": 0.02, "model_path": str(model)})
    frame = frame_bgr()
    out, info = node.send(node.frame(frame))
    change = np.abs(pixels(out).astype(int) - frame)
    assert info["applied"] and info["faces"] == 1 and info["params"] == {"epsilon": 0.02, "fraction": 1.0, "seed": 0}
    assert 0 < change.max() <= 5 and info["linf"] <= 0.02
    assert np.count_nonzero(change.max(axis=2)) < 0.2 * change.shape[0] * change.shape[1]  # the face crop only


def test_fraction_attacks_the_drawn_frames_only(injector):
    node = injector("/inj_fraction", {"attack": "gaussian", "fraction": 0.5, "seed": 11})
    applied = []
    for _ in range(12):
        msg = node.frame(astronaut_gray()[:128, :128])
        out, info = node.send(msg)
        applied.append(info["applied"])
        assert (bytes(out.data) != bytes(msg.data)) == info["applied"]
        assert info["reason"] == ("" if info["applied"] else "frame not drawn (fraction)")
    assert 0 < sum(applied) < 12


def test_bad_start_parameters_stop_the_node_with_a_reason(tmp_path):
    for params, words in (({"attack": "blur"}, "attack must be one of"),
                          ({"attack": "scaling"}, "target_image"),
                          ({"attack": "fgsm", "model_path": str(tmp_path / "none.pt")}, "no such file")):
        process = start_node(MODULE, tmp_path, "/inj_start", params)
        assert process.wait_exit(60) == 2
        log = process.log()
        process.stop()
        assert "bad parameters" in log and words in log, log
