"""The launch file and config files checked without `launch` (not installable here): read with `ast`.

Every executable the launch file starts is a console script of setup.py, every parameter it sets is
declared by that node (the node's own parameter table, found where it calls `declare_parameters`) with a
value of the right type, every launch configuration it reads is a declared argument, and every config
YAML parses and passes the nodes' own validation.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from emotion_perception.core.params import ParamSpec, validate

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "emotion_perception.launch.py"
BUILT_IN_PARAMETERS = {"use_sim_time"}  # declared by rclpy itself in every node


def evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    """A literal expression whose names refer to earlier module-level literals."""
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Dict):
        return {evaluate(k, env): evaluate(v, env) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.List | ast.Tuple):
        return [evaluate(item, env) for item in node.elts]
    return ast.literal_eval(node)


def module_literals(tree: ast.Module) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
            try:
                env[statement.targets[0].id] = evaluate(statement.value, env)
            except (ValueError, KeyError):
                continue
    return env


@cache
def console_scripts() -> dict[str, str]:
    """name -> "module:function" of setup.py's console_scripts (f-strings with {PACKAGE} resolved)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    package = module_literals(tree)["PACKAGE"]
    scripts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "console_scripts"
                                              for k in node.keys):
            entries = node.values[[getattr(k, "value", None) for k in node.keys].index("console_scripts")]
            for entry in entries.elts:
                parts = entry.values if isinstance(entry, ast.JoinedStr) else [entry]
                text = "".join(part.value if isinstance(part, ast.Constant) else package for part in parts)
                name, target = (side.strip() for side in text.split("="))
                scripts[name] = target
    return scripts


@cache
def node_parameter_table(executable: str) -> tuple[ParamSpec, ...]:
    """The spec table a node declares its parameters from: the name it passes to `declare_parameters`."""
    module_name = console_scripts()[executable].split(":")[0]
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text())
    names = {call.args[1].id for call in ast.walk(tree) if isinstance(call, ast.Call)
             and getattr(call.func, "id", "") == "declare_parameters" and isinstance(call.args[1], ast.Name)}
    assert len(names) == 1, f"{module_name}: expected one declare_parameters(node, TABLE) call, found {names}"
    return tuple(getattr(module, names.pop()))


def launch_value(literals: dict[str, Any], argument: str, text: str) -> Any:
    """What the launch file's `_typed` makes of a launch argument's text (None: not passed to the node)."""
    if literals["ARGUMENTS"][argument][2] == literals["BOOLEANS"]:
        return text == "true"
    if argument in literals.get("OPTIONAL", []) and text == "":
        return None
    if argument in literals.get("INTEGERS", []):
        return int(text)
    return float(text) if argument in literals["NUMBERS"] else text


def launch_problems(source: str) -> list[str]:
    """Everything wrong with a launch file of this package's form (ARGUMENTS + NODE_PARAMETERS tables)."""
    tree = ast.parse(source)
    literals = module_literals(tree)
    problems = []
    if "generate_launch_description" not in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}:
        problems.append("no generate_launch_description()")
    arguments, tables = literals.get("ARGUMENTS", {}), literals.get("NODE_PARAMETERS", {})
    declares_all = any(
        isinstance(n, ast.ListComp) and isinstance(n.elt, ast.Call)
        and getattr(n.elt.func, "id", "") == "DeclareLaunchArgument"
        and ast.unparse(n.generators[0].iter) == "ARGUMENTS.items()" for n in ast.walk(tree))
    if not declares_all:
        problems.append("ARGUMENTS are not all turned into DeclareLaunchArgument")
    read = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", "") == "LaunchConfiguration" and isinstance(n.args[0], ast.Constant)}
    read |= {n.slice.value for n in ast.walk(tree) if isinstance(n, ast.Subscript)
             and getattr(n.value, "id", "") == "config" and isinstance(n.slice, ast.Constant)}
    read |= {argument for table in tables.values() for argument in table.values()}
    problems += [f"launch configuration {name!r} is not a declared argument" for name in sorted(read - set(arguments))]
    problems += [f"argument {name!r} is declared but never used" for name in sorted(set(arguments) - read)
                 if name != "params_file"]
    # the executables it starts: the string keys of the dicts in the function that builds the Node actions
    builders = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                and any(getattr(c.func, "id", "") == "Node" for c in ast.walk(n) if isinstance(c, ast.Call))]
    started = {key.value for f in builders for n in ast.walk(f) if isinstance(n, ast.Dict) for key in n.keys
               if isinstance(key, ast.Constant) and key.value not in BUILT_IN_PARAMETERS}
    scripts = console_scripts()
    problems += [f"{name} is not a console script in setup.py" for name in sorted(started - set(scripts))]
    problems += [f"{name} has no NODE_PARAMETERS entry" for name in sorted(started - set(tables))]
    for executable, table in tables.items():
        if executable not in scripts:
            continue
        specs = {spec.name: spec for spec in node_parameter_table(executable)}
        for parameter, argument in table.items():
            if parameter not in specs:
                problems.append(f"{executable} declares no parameter {parameter!r}")
            elif argument in arguments:
                default, _, choices = arguments[argument]
                for text in [default, *(choices or [])]:
                    value = launch_value(literals, argument, text)
                    reason = None if value is None else specs[parameter].check(value)
                    if reason:
                        problems.append(f"{executable}: {argument}:={text}: {reason}")
    return problems


def test_launch_file_is_consistent_with_setup_py_and_the_nodes():
    source = LAUNCH.read_text()
    assert launch_problems(source) == []
    literals = module_literals(ast.parse(source))
    wanted = {"use_source", "source_type", "source", "rate", "use_resnet", "attack", "epsilon", "image_topic",
              "namespace", "params_file", "publish_debug_image", "use_sim_time"}
    assert wanted <= set(literals["ARGUMENTS"])
    assert set(literals["NODE_PARAMETERS"]) == {"landmark_emotion_node", "image_source_node",
                                                "resnet_emotion_node", "adversarial_injector_node", "scorer_node"}


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('"loop": "loop",', '"loop": "loop", "colour": "loop",', "image_source_node declares no parameter 'colour'"),
    ('"rate": ("10.0",', '"rate": ("fast",', "could not convert"),
    ('NUMBERS = ["rate", "epsilon",', 'NUMBERS = ["epsilon",', "rate:=10.0: rate must be of type float"),
    ('"device": "device",', '"device": "device", "x": "gpu_id",', "'gpu_id' is not a declared argument"),
    ('"adversarial_injector_node": camera', '"adversarial_injector": camera', "adversarial_injector is not a"),
    ('"attack": ("none",', '"attack": ("fgsm_x",', "attack must be one of"),
    ('"detect_tiles": ("",', '"detect_tiles": ("9",', "detect_tiles must be <= 4"),
    ('"attack_seed": ("",', '"attack_seed": ("x",', "invalid literal for int()"),
])
def test_the_checks_catch_a_broken_launch_file(old: str, new: str, problem: str):
    source = LAUNCH.read_text()
    assert old in source
    try:
        problems = launch_problems(source.replace(old, new))
    except ValueError as error:  # a default that is not even a number
        problems = [str(error)]
    assert any(problem in p for p in problems), problems


def test_attack_choices_are_exactly_the_injectors():
    literals = module_literals(ast.parse(LAUNCH.read_text()))
    injector = {spec.name: spec for spec in node_parameter_table("adversarial_injector_node")}
    assert list(injector["attack"].choices) == literals["ATTACKS"]


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_config_files_parse_and_pass_the_nodes_own_validation(path: Path):
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict) and document, f"{path.name}: empty or not a mapping"
    scripts = console_scripts()
    for key, section in document.items():
        executable = key.rsplit("/", 1)[-1]
        assert executable in scripts, f"{path.name}: section {key!r} names no node of this package"
        values = {name: value for name, value in section["ros__parameters"].items()
                  if name not in BUILT_IN_PARAMETERS}
        assert validate(node_parameter_table(executable), values) == [], f"{path.name}: {key}"
