"""Reliability of the nodes over real rclpy and Fast DDS (bounded; the full figures: tools/reliability.py,
docs/reliability.md): fuzzed frames crash no node and every malformed one is counted; memory stays flat over a
soak; under overload received + lost = published; diagnostics recover; frames near the DDS limit are warned about."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from face_images import happy_frame
from reliability_nodes import run_fuzz, run_overload, run_soak
from ros_helpers import ClassifierSession, detail_for, image_msg, raw_image, start_node

# Timings are measured, not asserted: tools/reliability.py reports them.
FUZZ_FRAMES = {"landmark": 2000, "resnet": 500, "injector": 500}


def check_accounting(result: dict, tolerance: float = 0.01) -> None:
    """Every published frame was received or estimated lost (within `tolerance`, at least 2 frames)."""
    seen = result["received_frames"] + result["lost_frames"]
    assert abs(seen - result["published"]) <= max(2, tolerance * result["published"]), result


@pytest.mark.parametrize("kind", list(FUZZ_FRAMES))
def test_reliability_fuzzed_frames_crash_no_node_and_every_malformed_one_is_counted(ros_context, tmp_path, kind):
    result = run_fuzz(ros_context, tmp_path, kind, FUZZ_FRAMES[kind])
    log = result.pop("log_tail")
    assert result["alive_at_end"] and result["exit_status"] == 0 and "Traceback" not in log, log
    assert result["errors"] == 0, log
    check_accounting(result)
    # a malformed frame that arrived was counted; only those lost before the node can be missing
    assert result["malformed"] - result["lost_frames"] <= result["bad_frames"] <= result["malformed"], result
    if kind == "injector":  # every frame goes out again, a bad one untouched
        assert result["republished"] == result["received_frames"] == result["processed_frames"], result
    else:
        done = sum(result[k] for k in ("processed_frames", "bad_frames", "dropped_frames", "errors"))
        assert done == result["received_frames"], result


def test_reliability_soak_keeps_the_memory_flat(ros_context, tmp_path):
    result = run_soak(ros_context, tmp_path, 2000, 100.0)
    assert result["alive_at_end"], result
    check_accounting(result)
    assert result["rss_growth_percent"] < 2.0, result


def test_reliability_overload_every_frame_is_received_or_counted_lost(ros_context, tmp_path):
    result = run_overload(ros_context, tmp_path, seconds=15.0)
    print(result)  # latencies: reported, not asserted
    assert result["alive_at_end"] and result["dropped"] > 0, result
    assert abs(result["accounting_error_percent"]) <= 1.0, result


def test_reliability_diagnostics_recover_and_large_frames_are_warned_about(ros_context, tmp_path):
    session = ClassifierSession(ros_context, tmp_path, "/rel_diag", {"reliability": "reliable",
                                                                      "diagnostics_period": 0.2},
                                "emotion_perception.ros.nodes.landmark_emotion_node", "landmark_emotion_node")

    def level() -> bytes | None:
        levels = [s.level for a in session.diagnostics for s in a.status if "/rel_diag/" in s.name]
        return levels[-1] if levels else None

    try:
        session.probe.wait_for_subscribers(session.images)
        assert session.answer(happy_frame())["faces"]
        bad = raw_image("yuv_made_up", 4, 4, 4, bytes(16), session.next_stamp())
        assert session.send_until(bad, lambda: (session.diag() or {}).get("bad_frames") == "1")
        assert session.probe.spin_until(lambda: level() == DiagnosticStatus.WARN, 5)
        frame = image_msg(happy_frame(), session.next_stamp())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and level() != DiagnosticStatus.OK:  # good frames go on arriving
            frame.header.stamp.sec = session.next_stamp()
            session.send(frame)
            session.probe.spin_for(0.5)
        assert level() == DiagnosticStatus.OK, session.diag()
        assert session.diag()["bad_frames"] == "1"  # the count is kept
        big = np.zeros((4096, 4096, 3), np.uint8)  # 48 MiB: more than the profile's 32 MiB segment
        big[1000:3048, 1000:3048] = cv2.resize(happy_frame()[:, 64:576], (2048, 2048))
        stamp = session.next_stamp()
        arrived = session.send_until(image_msg(big, stamp), lambda: detail_for(session.details, stamp) is not None,
                                     timeout=60, period=5.0)
        log = session.process.log()
        assert arrived and log.count("larger than the 32 MiB shared-memory segment") == 1, log
    finally:
        session.close()


def test_reliability_the_source_warns_once_about_frames_near_the_dds_limit(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), np.full((3000, 4000, 3), 90, np.uint8))  # 34 MiB as bgr8
    process = start_node("emotion_perception.ros.nodes.image_source_node", tmp_path, "/rel_source",
                         {"source": str(folder), "exit_when_done": True, "rate": 5.0})
    assert process.wait_exit(60) == 0
    log = process.log()
    assert log.count("shared-memory segment") == 1 and "frame a.png (4000x3000 bgr8) is 34.3 MiB" in log, log
