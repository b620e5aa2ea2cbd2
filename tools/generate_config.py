"""Writes config/emotion_perception.yaml and the parameter tables of docs/nodes.md from the parameter specs.

    python tools/generate_config.py            # rewrite both files
    python tools/generate_config.py --check    # exit 1, naming what differs, when either is not what it would write

The specs (`emotion_perception.ros.params.NODE_PARAMS`) are the one source of every node parameter's default,
range, choices and description. The YAML gets every parameter with its default; docs/nodes.md gets one table per
node between `<!-- params:NODE -->` and `<!-- /params:NODE -->`, and the launch file's arguments (from its own
declaration table) between `<!-- params:launch -->` and `<!-- /params:launch -->`. The specs used are those of
the tree this script lives in.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import json
import math
import re
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the specs of this tree, not of another install of the package

import yaml  # noqa: E402

from emotion_perception.core.params import ParamSpec, defaults  # noqa: E402
from emotion_perception.ros.params import NODE_PARAMS  # noqa: E402

CONFIG = REPO / "config" / "emotion_perception.yaml"
DOCS = REPO / "docs" / "nodes.md"
LAUNCH_FILE = REPO / "launch" / "emotion_perception.launch.py"
WIDTH = 100  # of the YAML's comment lines
REGION = re.compile(r"(<!-- params:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /params:(?P=name) -->)", re.S)
YAML_HEADER = """\
# Every parameter of the emotion_perception nodes with its default, for `ros2 run ... --ros-args --params-file`
# and the launch file's params_file. Keys are /**/<node name>: they match the node in any namespace.
# Generated from the parameter specs (emotion_perception/ros/params.py) by tools/generate_config.py: change a
# default there, not here. For other values on a robot, copy this file and give the copy as params_file.
"""


# --- the launch file, read without ROS's `launch` ------------------------------------------------------------

class StandIn:
    """Stands in for a class of `launch` / `launch_ros`: records what it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.args))}, {self.kwargs!r})"


class DeclareLaunchArgument(StandIn):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        default, choices = kwargs.get("default_value"), kwargs.get("choices")
        if choices is not None and isinstance(default, str) and default not in choices:  # as launch does
            raise RuntimeError(f'Provided default_value "{default}" is not in provided choices "{choices}".')
        self.name = name


class LaunchConfiguration(StandIn):
    def perform(self, context: Any) -> str:
        return context.launch_configurations[self.args[0]]


class LaunchDescription(StandIn):
    @property
    def entities(self) -> list[Any]:
        return list(self.args[0])


STAND_INS = {
    "launch": {"LaunchDescription": LaunchDescription},
    "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument,
                       "OpaqueFunction": type("OpaqueFunction", (StandIn,), {})},
    "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                             "PathJoinSubstitution": type("PathJoinSubstitution", (StandIn,), {})},
    "launch_ros": {},
    "launch_ros.actions": {"Node": type("Node", (StandIn,), {})},
    "launch_ros.substitutions": {"FindPackageShare": type("FindPackageShare", (StandIn,), {})},
}


@contextlib.contextmanager
def stand_in_modules() -> Iterator[None]:
    """`launch` and `launch_ros` replaced by recording stand-ins while the block runs (whether installed or not)."""
    saved = {name: sys.modules.get(name) for name in STAND_INS}
    try:
        for name, members in STAND_INS.items():
            module = types.ModuleType(name)
            module.__dict__.update(members)
            sys.modules[name] = module
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load_launch_file(path: Path = LAUNCH_FILE) -> types.ModuleType:
    """The launch file as a module whose `launch` / `launch_ros` classes are the recording stand-ins above."""
    spec = importlib.util.spec_from_file_location(f"_launch_file_{path.stem.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    with stand_in_modules():
        spec.loader.exec_module(module)
    return module


# --- values ---------------------------------------------------------------------------------------------------

def yaml_value(value: Any) -> str:
    """`value` as a YAML scalar or flow sequence that PyYAML reads back as the same value of the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"no finite float: {value!r}")
        text = repr(value)
        if "." not in text:  # 1e-05: YAML 1.1 needs the dot (1.0e-05) to read a float
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str):
        return json.dumps(value)  # a double-quoted YAML scalar: "0", "true" and "" stay strings
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    raise TypeError(f"no YAML form for {type(value).__name__} {value!r}")


def number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def bounds(spec: ParamSpec, between: str = "–") -> str:
    """The range or choices of a spec in words ("" when it has none)."""
    if spec.choices:
        return ", ".join(spec.choices)
    if spec.low is not None and spec.high is not None:
        return f"{number(spec.low)}{between}{number(spec.high)}"
    if spec.low is not None:
        return f">= {number(spec.low)}"
    if spec.high is not None:
        return f"<= {number(spec.high)}"
    return "existing file or empty" if spec.must_exist else ""


# --- the YAML ---------------------------------------------------------------------------------------------------

def yaml_comment(spec: ParamSpec) -> str:
    """The description, then the range or the choices, and whether `ros2 param set` applies at run time."""
    extent = bounds(spec, "..")
    extent = "" if spec.must_exist else f"one of {extent}" if spec.choices else extent
    return spec.description + (f" [{extent}]" if extent else "") + (" (run-time)" if spec.tunable else "")


def yaml_text() -> str:
    lines = [YAML_HEADER.rstrip("\n")]
    for node, specs in NODE_PARAMS.items():
        lines += ["", f"/**/{node}:", "  ros__parameters:"]
        for spec in specs:  # each setting under its description
            lines += textwrap.wrap(yaml_comment(spec), WIDTH, initial_indent="    # ", subsequent_indent="    # ",
                                   break_on_hyphens=False)
            lines.append(f"    {spec.name}: {yaml_value(spec.default)}")
    text = "\n".join(lines) + "\n"
    parsed = yaml.safe_load(text)
    for node, specs in NODE_PARAMS.items():  # exactly the defaults, types included
        values, wanted = parsed[f"/**/{node}"]["ros__parameters"], defaults(specs)
        if values != wanted or any(type(values[k]) is not type(v) for k, v in wanted.items()):
            raise AssertionError(f"{node}: the YAML would not read back as the specs' defaults")
    return text


# --- the docs' tables -------------------------------------------------------------------------------------------

def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def code(value: Any) -> str:
    """A default as markdown code: strings unquoted (empty: ""), other values as in the YAML."""
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{yaml_value(value)}`"


def run_time(spec: ParamSpec, specs: tuple[ParamSpec, ...]) -> str:
    """When a change takes effect: lifecycle nodes (those with `autostart`) apply the others on configure."""
    if spec.tunable:
        return "yes"
    lifecycle = any(s.name == "autostart" for s in specs)
    return "on configure" if lifecycle and spec.name != "autostart" else "start only"


def node_table(node: str) -> str:
    specs = NODE_PARAMS[node]
    shown = specs
    if node == "resnet_emotion_node":  # the docs give only what it does not share with the landmark node
        shown = tuple(s for s in specs if s not in NODE_PARAMS["landmark_emotion_node"])
    rows = ["| parameter | default | range or choices | run-time | description |", "|---|---|---|---|---|"]
    rows += [f"| `{s.name}` | {cell(code(s.default))} | {cell(bounds(s))} | {run_time(s, specs)} | "
             f"{cell(s.description)} |" for s in shown]
    return "\n".join(rows)


def launch_table() -> str:
    launch_file = load_launch_file()
    rows = ["| argument | default | description | choices |", "|---|---|---|---|"]
    for name, (default, description, choices) in launch_file.declarations().items():
        shown = f"`share/{launch_file.PACKAGE}/config/{launch_file.CONFIG_FILES[name]}`" if default is None \
            else code(default)
        listed = ", ".join(code(choice) for choice in choices or [])
        rows.append(f"| `{name}` | {shown} | {cell(description)} | {listed} |")
    return "\n".join(rows)


def tables() -> dict[str, str]:
    return {**{node: node_table(node) for node in NODE_PARAMS}, "launch": launch_table()}


def docs_text(current: str) -> str:
    """`current` with every params region rewritten; every table must have exactly one region."""
    wanted = tables()
    found = [match["name"] for match in REGION.finditer(current)]
    problems = [f"no region <!-- params:{name} --> ... <!-- /params:{name} -->" for name in wanted if name not in found]
    problems += [f"region {name!r} is there {found.count(name)} times" for name in set(found) if found.count(name) > 1]
    problems += [f"region {name!r} names no table" for name in found if name not in wanted]
    if problems:
        raise SystemExit(f"{DOCS.relative_to(REPO)}: " + "; ".join(problems))
    return REGION.sub(lambda m: f"{m[1]}{wanted[m['name']]}\n{m[4]}", current)


# --- main -------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file differs")
    args = parser.parse_args(argv)
    outputs = {CONFIG: yaml_text(), DOCS: docs_text(DOCS.read_text())}
    differing = [path for path, text in outputs.items() if not path.is_file() or path.read_text() != text]
    for path in differing:
        name = str(path.relative_to(REPO))
        if args.check:
            old = path.read_text().splitlines(keepends=True) if path.is_file() else []
            diff = difflib.unified_diff(old, outputs[path].splitlines(keepends=True), name, f"{name} (generated)")
            sys.stdout.writelines(list(diff)[:60])
            print(f"{name} differs from what tools/generate_config.py writes")
        else:
            path.write_text(outputs[path])
            print(f"wrote {name}")
    if args.check and differing:
        print("run: python tools/generate_config.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
