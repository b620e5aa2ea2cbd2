"""REP-155 (ROS4HRI): the label -> hri_msgs/Expression mapping and the valence/arousal table without ROS, and the
landmark node's REP-155 topics over real DDS with subscribers typed with hri_msgs (test/hri_probe.py, run in the
ROS 2 overlay's environment, where hri_msgs is): out from its own face tracker, and in from an upstream ROS4HRI
face detector."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from emotion_perception.core.expressions import (
    CIRCUMPLEX,
    HRI_EXPRESSIONS,
    NRC_VAD,
    face_id,
    hri_expression,
    normalized_roi,
    valence_arousal,
)
from emotion_perception.core.faces import FaceBox
from emotion_perception.core.labels import EMOTIONS

REPO = Path(__file__).resolve().parents[1]
EXPRESSION_MSG = REPO.parent / "shared" / "ros_src" / "hri_msgs" / "msg" / "Expression.msg"
NODE = "emotion_perception.ros.nodes.landmark_emotion_node"


def test_rep155_every_label_maps_to_a_constant_of_the_expression_message():
    if not EXPRESSION_MSG.is_file():
        pytest.skip(f"no hri_msgs sources at {EXPRESSION_MSG.parent}")
    constants = dict(re.findall(r'^string (\w+)="(\w+)"', EXPRESSION_MSG.read_text(), re.M))
    assert set(HRI_EXPRESSIONS) == set(EMOTIONS)
    assert set(HRI_EXPRESSIONS.values()) <= set(constants.values())
    assert {label: constants_name for label, value in HRI_EXPRESSIONS.items()
            for constants_name, constant in constants.items() if constant == value} == {
        "anger": "ANGRY", "contempt": "DISGUSTED", "disgust": "DISGUSTED", "fear": "SCARED", "happy": "HAPPY",
        "neutral": "NEUTRAL", "sadness": "SAD", "surprise": "SURPRISED"}
    assert hri_expression("happy") == "happy" and hri_expression("bored") == "bored"


def test_rep155_valence_and_arousal_are_the_score_weighted_circumplex_points():
    assert set(NRC_VAD) == set(CIRCUMPLEX) == set(EMOTIONS)
    assert NRC_VAD["anger"] == (0.167, 0.865) and NRC_VAD["happy"] == (0.960, 0.732)  # as published
    for label, (valence, arousal) in NRC_VAD.items():
        assert CIRCUMPLEX[label] == pytest.approx((2 * valence - 1, 2 * arousal - 1), abs=1e-3)
    assert CIRCUMPLEX["neutral"] == (0.0, 0.0)
    assert valence_arousal({"happy": 1.0}) == pytest.approx(CIRCUMPLEX["happy"])
    assert valence_arousal({"happy": 0.5, "sadness": 0.5, "unknown": 3.0}) == pytest.approx(
        ((0.92 - 0.896) / 2, (0.464 - 0.424) / 2))
    assert valence_arousal({"anger": 0.2, "fear": 0.2}) == pytest.approx(
        ((-0.666 - 0.854) / 2, (0.73 + 0.68) / 2))
    assert valence_arousal({}) == (0.0, 0.0) and valence_arousal({"unknown": 1.0}) == (0.0, 0.0)
    # the positive emotions lie right of the negative ones, sadness is the calmest, surprise the most aroused
    assert min(CIRCUMPLEX[e][0] for e in ("happy", "surprise")) > max(
        CIRCUMPLEX[e][0] for e in ("anger", "contempt", "disgust", "fear", "sadness"))
    assert min(CIRCUMPLEX, key=lambda e: CIRCUMPLEX[e][1]) == "sadness"
    assert max(CIRCUMPLEX, key=lambda e: CIRCUMPLEX[e][1]) == "surprise"


def test_rep155_the_docs_table_is_the_code():
    rows = re.findall(r"^\| (\w+) \| `(\w+)` \| (-?[\d.]+) \| (-?[\d.]+) \|", (REPO / "docs" / "nodes.md").read_text(),
                      re.M)
    assert {label: (expression, float(v), float(a)) for label, expression, v, a in rows} == {
        label: (HRI_EXPRESSIONS[label], *CIRCUMPLEX[label]) for label in EMOTIONS}


def test_rep155_face_ids_and_regions():
    assert face_id(7) == "f7"
    box = FaceBox(-10, 48, 320, 500, 1.0, "detector")
    assert normalized_roi(box, 640, 480) == (0.0, 0.1, 0.5, 1.0)


def run_probe(processes, *args: str) -> dict:
    result = processes.run([sys.executable, str(REPO / "test" / "hri_probe.py"), *args], timeout=180)
    assert result.returncode == 0, result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_node(processes, namespace: str, **params: str) -> object:
    """The landmark node in the overlay's environment (the probe, started next, waits for it to listen)."""
    words = [sys.executable, "-m", NODE, "--ros-args", "-r", f"__ns:={namespace}", "-p", "reliability:=reliable"]
    for name, value in params.items():
        words += ["-p", f"{name}:={value}"]
    return processes.start(words, "node")


def test_rep155_landmark_node_publishes_tracked_faces_their_regions_and_expressions(processes):
    node = start_node(processes, "/rep155")
    got = run_probe(processes, "camera", "/rep155")
    assert "REP-155: publishing /humans/faces/tracked" in node.log()
    received = got["received"]
    tracked = received["/humans/faces/tracked"]
    with_face = [m for m in tracked if m["sec"] < 200]
    assert len(with_face) >= 6 and all(m["frame_id"] == "head_camera" for m in tracked), tracked
    ids = {face for m in with_face for face in m["ids"]}
    assert len(ids) == 1 and re.fullmatch(r"f\d+", next(iter(ids))), with_face  # one face, one id, kept
    face = ids.pop()
    assert [m["ids"] for m in tracked if m["sec"] > 200][-1] == []  # gone with the face
    expressions = received[f"/humans/faces/{face}/expression"]
    assert len(expressions) >= 4 and {m["sec"] for m in expressions} <= {m["sec"] for m in with_face}
    for message in expressions:
        assert message["expression"] == "happy" and message["frame_id"] == "head_camera"
        assert message["valence"] > 0.5 and 0 < message["arousal"] < 1 and 0.3 < message["confidence"] <= 1
    rois = received[f"/humans/faces/{face}/roi"]
    assert {m["sec"] for m in rois} == {m["sec"] for m in expressions}
    roi = rois[-1]
    assert 0.3 < roi["xmin"] < roi["xmax"] < 0.8 and 0.05 < roi["ymin"] < roi["ymax"] < 0.6, roi
    # the gone face's publishers were destroyed
    assert got["publishers"][f"/humans/faces/{face}/expression"] == 0
    assert got["publishers"][f"/humans/faces/{face}/roi"] == 0


def test_rep155_ros4hri_input_gives_expressions_for_the_upstream_faces_with_their_ids(processes):
    node = start_node(processes, "/rep155_in", face_source="ros4hri")
    got = run_probe(processes, "upstream")
    assert "faces from ROS4HRI: /humans/faces/tracked and /humans/faces/<id>/cropped" in node.log()
    received = got["received"]
    first, second = received["/humans/faces/a1b2c/expression"], received["/humans/faces/d3e4f/expression"]
    assert len(first) >= 4 and len(second) >= 3, got
    assert {m["sec"] for m in first} <= set(range(101, 111)) and {m["sec"] for m in second} <= set(range(201, 209))
    for message in first + second:
        assert message["expression"] == "happy" and message["frame_id"] == "head_camera"
        assert message["valence"] > 0.5 and 0.3 < message["confidence"] <= 1
    # the node does not publish the tracked list (the upstream detector does); a face that left lost its publisher
    assert got["publishers"]["/humans/faces/tracked"] == 1
    assert got["publishers"]["/humans/faces/a1b2c/expression"] == 0
    assert got["publishers"]["/humans/faces/d3e4f/expression"] == 1


def test_rep155_hri_msgs_is_an_optional_dependency_of_the_package():
    """rosdep installs hri_msgs unless EMOTION_PERCEPTION_HRI=false (REP-149 condition); the rest is unconditional."""
    from catkin_pkg.package import parse_package

    package = parse_package(str(REPO / "package.xml"))
    for environment, wanted in (({}, True), ({"EMOTION_PERCEPTION_HRI": "false"}, False)):
        package.evaluate_conditions(environment)
        chosen = {d.name: d.evaluated_condition for d in package.exec_depends}
        assert chosen["hri_msgs"] is wanted
        assert all(value for name, value in chosen.items() if name != "hri_msgs")
