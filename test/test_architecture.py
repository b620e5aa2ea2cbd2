"""The folder tree is the architecture: each layer of `emotion_perception` imports only the layers below it.

    core < features < models < data < attacks < experiments < ros < cli

`ros` and `cli` may import anything below them, nothing imports `cli`, and only they import rclpy and the ROS
message packages. Checked on the source with `ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emotion_perception"
LAYERS = ("core", "features", "models", "data", "attacks", "experiments", "ros", "cli")
ROS_MODULES = ("rclpy", "std_msgs", "sensor_msgs", "diagnostic_msgs", "lifecycle_msgs", "rcl_interfaces",
               "builtin_interfaces", "hri_msgs", "launch", "launch_ros")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name inside the package (None for the package root and outside modules)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "emotion_perception" and parts[1] in LAYERS else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in a module; `from emotion_perception import x` counts as
    importing `emotion_perception.x`, relative imports are resolved."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[: len(package) - node.level + 1], node.module or ""] if node.level
                            else [node.module or ""]).strip(".")
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "assets" not in p.parts)


def violations() -> list[str]:
    problems = []
    for path in modules():
        own = layer_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for line, name in imports_of(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
            other = layer_of(name)
            if own is None:
                continue  # the package root (__init__, __main__) may start the CLI
            if other is not None and LAYERS.index(other) > LAYERS.index(own):
                problems.append(f"{where} ({own} is below {other})")
            if own not in ("ros", "cli") and name.split(".")[0] in ROS_MODULES:
                problems.append(f"{where} (only ros/ and cli/ import ROS)")
    return problems


def test_every_layer_imports_only_the_layers_below_it():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "emotion_perception"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "bad.py").write_text("from emotion_perception.experiments.trials import Trials\n"
                                          "def f():\n    import rclpy\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert len(violations()) == 2


@pytest.mark.parametrize("folder", [p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()])
def test_every_subpackage_says_what_it_holds(folder):
    assert ast.get_docstring(ast.parse((folder / "__init__.py").read_text())), folder


def test_the_package_root_holds_at_most_three_modules():
    assert len(list(PACKAGE.glob("*.py"))) <= 3
