"""The shipped config/emotion_perception.yaml and the parameter tables of docs/nodes.md against the nodes' own
parameter specs (no ROS needed): both are what `tools/generate_config.py` writes from `NODE_PARAMS`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from emotion_perception.core.params import ParamSpec, defaults, validate
from emotion_perception.ros.params import LANDMARK_NODE_PARAMS, NODE_PARAMS

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "emotion_perception.yaml"
DOCS = REPO / "docs" / "nodes.md"
GENERATOR = REPO / "tools" / "generate_config.py"


@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_config", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_yaml_and_docs_tables_are_what_the_generator_writes():
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("path", "old", "new"), [
    (CONFIG, "    loop: false\n", "    loop: true\n"),  # the drift this file once had
    (CONFIG, "    rate: 10.0\n", "    rate: 10\n"),  # an int where the node wants a float
    (DOCS, "| `loop` | `false` |", "| `loop` | `true` |"),
    (DOCS, "| `loop` | `\"\"` |", "| `loop` | `true` |"),  # the launch table
])
def test_check_names_the_file_that_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                          path: Path, old: str, new: str):
    module = generator()
    copies = {}
    for name, original in (("CONFIG", CONFIG), ("DOCS", DOCS)):
        copies[original] = tmp_path / original.relative_to(REPO)
        copies[original].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(original, copies[original])
        monkeypatch.setattr(module, name, copies[original])
    monkeypatch.setattr(module, "REPO", tmp_path)
    assert module.main([]) == 0  # the copies as generated, whatever the shipped files are
    assert module.main(["--check"]) == 0
    text = copies[path].read_text()
    assert old in text
    copies[path].write_text(text.replace(old, new, 1))
    capsys.readouterr()
    assert module.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"{path.relative_to(REPO)} differs" in out and new.strip() in out
    assert module.main([]) == 0  # rewrites it
    assert module.main(["--check"]) == 0


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_every_node_section_is_exactly_its_specs_defaults_types_included(node: str):
    document = yaml.safe_load(CONFIG.read_text())
    assert set(document) == {f"/**/{name}" for name in NODE_PARAMS}
    values = document[f"/**/{node}"]["ros__parameters"]
    assert values == defaults(NODE_PARAMS[node])
    assert list(values) == [spec.name for spec in NODE_PARAMS[node]]
    for spec in NODE_PARAMS[node]:
        assert type(values[spec.name]) is spec.kind, spec.name  # 1.0 stays a float, lists stay lists
    assert validate(NODE_PARAMS[node], values) == []


def test_yaml_values_read_back_as_the_same_type():
    yaml_value = generator().yaml_value
    for value in (1.0, 0.01, 1e-05, 2.5e20, 0, 16_777_216, True, False, "", "0", "true", "null", "a: b",
                  ["emotion/detail", "x"], [1.0, 2.0]):
        back = yaml.safe_load(f"v: {yaml_value(value)}")["v"]
        assert back == value and type(back) is type(value), (value, yaml_value(value))


def test_docs_tables_state_the_spec_defaults():
    text = DOCS.read_text()
    assert "| `loop` | `false` | " in text
    assert "| `detect_every` | `15` | 1–100 | yes |" in text
    assert "| `device` | `auto` | auto, cpu, cuda | on configure |" in text


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
