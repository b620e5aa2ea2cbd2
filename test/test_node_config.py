"""The shipped config/emotion_perception.yaml against the nodes' own parameter definitions (no ROS needed)."""

from pathlib import Path

import yaml

from emotion_perception.core.params import ParamSpec, defaults, validate
from emotion_perception.ros.params import LANDMARK_NODE_PARAMS

CONFIG = Path(__file__).resolve().parents[1] / "config" / "emotion_perception.yaml"


def test_landmark_node_section_passes_validation_and_names_every_parameter():
    values = yaml.safe_load(CONFIG.read_text())["/**/landmark_emotion_node"]["ros__parameters"]
    assert validate(LANDMARK_NODE_PARAMS, values) == []
    assert set(values) == {spec.name for spec in LANDMARK_NODE_PARAMS}
    assert values == defaults(LANDMARK_NODE_PARAMS)


def test_validation_gives_reasons():
    problems = validate(LANDMARK_NODE_PARAMS, {
        "detect_every": 0, "reliability": "sometimes", "detect_scale": "half", "publish_landmarks": 1,
        "model_path": "/no/such/model.npz", "colour": "blue",
    })
    assert len(problems) == 6
    text = "; ".join(problems)
    for word in ("detect_every must be >= 1", "best_effort", "detect_scale must be of type float",
                 "publish_landmarks must be of type bool", "no such file", "unknown parameter 'colour'"):
        assert word in text
    assert "must be of type float" in ParamSpec("x", 1.0, "d", 0.0, 2.0).check(2)  # as rclpy: write 2.0
