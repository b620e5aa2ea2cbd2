"""The launch file checked without ROS's `launch` (tests must not need it): its source read with `ast`, and the
file itself loaded with recording stand-ins for `launch` / `launch_ros` (`tools/generate_config.py`), so that its
declarations and its `_nodes` can be evaluated with a fake launch context.

Every executable it starts is a console script of setup.py whose node declares the spec table
`NODE_PARAMS[executable]`; every argument that sets a node parameter defaults to "" (not given), names a spec of
each node it sets, takes its choices from the spec, and is passed, with the spec's type, only when given, after
the params file, so that the params file decides otherwise. Broken copies of the launch file show that the
checks catch each mistake.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
from functools import cache
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import yaml

from emotion_perception.core.params import validate
from emotion_perception.ros.params import NODE_PARAMS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "emotion_perception.launch.py"
BUILT_IN_PARAMETERS = {"use_sim_time"}  # declared by rclpy itself in every node
PARAMS_FILE = "/given/params.yaml"  # what the default params_file stands for in the fake context
EVERYTHING_ON = {"use_source": "true", "use_landmark": "true", "use_resnet": "true", "use_scorer": "true"}
# what the launch file sets itself, whatever the params file says: the scorer scores the classifiers that run, one
# classifier publishes the REP-155 faces, the source waits for the nodes that read the camera
SET_BY_LAUNCH = {"scorer_node": {"detail_topics", "wait_for_classifiers"}, "resnet_emotion_node": {"publish_hri"},
                 "image_source_node": {"wait_for_subscribers", "wait_for_scorer"},
                 "adversarial_injector_node": {"wait_for_subscribers"}}


@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_config", REPO / "tools" / "generate_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def console_scripts() -> dict[str, str]:
    """name -> "module:function" of setup.py's console_scripts (f-strings with {PACKAGE} resolved)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    package = next(ast.literal_eval(s.value) for s in tree.body if isinstance(s, ast.Assign)
                   and getattr(s.targets[0], "id", "") == "PACKAGE")
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


def declared_table(executable: str) -> Any:
    """The spec table the node's module declares its parameters from: the name it passes to
    `declare_parameters(node, TABLE)`, or its class's `PARAMS = TABLE` (classifier nodes)."""
    module = importlib.import_module(console_scripts()[executable].split(":")[0])
    tree = ast.parse(Path(module.__file__).read_text())
    names = {call.args[1].id for call in ast.walk(tree) if isinstance(call, ast.Call)
             and getattr(call.func, "id", "") == "declare_parameters" and isinstance(call.args[1], ast.Name)}
    names |= {node.value.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
              and [getattr(t, "id", "") for t in node.targets] == ["PARAMS"] and isinstance(node.value, ast.Name)}
    assert len(names) == 1, f"{module.__name__}: expected one parameter table, found {names}"
    return getattr(module, names.pop())


# --- the launch file evaluated with a fake context ---------------------------------------------------------------

def load(source: str | None = None, tmp_path: Path | None = None) -> ModuleType:
    """The launch file (or a changed copy of its source) loaded with the stand-ins."""
    if source is None:
        return generator().load_launch_file(LAUNCH)
    path = tmp_path / "changed.launch.py"
    path.write_text(source)
    return generator().load_launch_file(path)


def declared(launch: ModuleType) -> dict[str, Any]:
    """name: the DeclareLaunchArgument stand-in, of generate_launch_description()."""
    entities = launch.generate_launch_description().entities
    return {e.name: e for e in entities if type(e).__name__ == "DeclareLaunchArgument"}


def simulate(launch: ModuleType, **given: str) -> dict[str, dict[str, Any]]:
    """executable: the keyword arguments of its Node, as `ros2 launch` with these arguments would make it."""
    arguments = declared(launch)
    values = {}
    for name, argument in arguments.items():
        choices = argument.kwargs.get("choices")
        if name in given:
            value = given.pop(name)
            if choices is not None and value not in choices:  # as launch does
                raise ValueError(f"{name}:={value} is not one of {choices}")
        else:
            value = argument.kwargs["default_value"]
        values[name] = value if isinstance(value, str) else PARAMS_FILE if name == "params_file" else "/dds.xml"
    if given:
        raise ValueError(f"not declared: {sorted(given)}")
    functions = [e.kwargs.get("function") or e.args[0] for e in launch.generate_launch_description().entities
                 if type(e).__name__ == "OpaqueFunction"]
    assert len(functions) == 1
    nodes = functions[0](SimpleNamespace(launch_configurations=values))
    return {node.kwargs["executable"]: node.kwargs for node in nodes}


def passed(node: dict[str, Any]) -> dict[str, Any]:
    """The parameters a Node gets besides the params file (the dicts in its `parameters`, in order)."""
    merged: dict[str, Any] = {}
    for entry in node["parameters"]:
        if isinstance(entry, dict):
            merged.update(entry)
    return merged


def example_value(launch: ModuleType, name: str) -> str:
    """A valid value other than the default for an argument that sets a node parameter."""
    spec = launch.spec(name)
    if spec.choices:
        return next(c for c in spec.choices if c != spec.default)
    if spec.kind is bool:
        return str(not spec.default).lower()
    if spec.kind is str:
        return "" if spec.must_exist else "given_text"  # (a must_exist path is checked on this machine)
    value = spec.high if spec.high is not None else spec.default + 1
    return str(value)


# --- the checks; each returns its problems ---------------------------------------------------------------------

def static_problems(source: str) -> list[str]:
    """From the source alone: what `_nodes` reads is declared, and every launch-level argument is read there."""
    tree = ast.parse(source)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    problems = [f"no {name}()" for name in ("generate_launch_description", "_nodes") if name not in functions]
    launch = argument_kinds(tree)
    read = {n.slice.value for n in ast.walk(functions.get("_nodes", tree)) if isinstance(n, ast.Subscript)
            and getattr(n.value, "id", "") in ("config", "switch") and isinstance(n.slice, ast.Constant)}
    problems += [f"_nodes reads {name!r}, which is not a declared argument" for name in sorted(read - launch["all"])]
    problems += [f"argument {name!r} is declared but _nodes never reads it" for name in sorted(launch["Launch"] - read)]
    return problems


def argument_kinds(tree: ast.Module) -> dict[str, set[str]]:
    """The names of the ARGUMENTS table by kind (Launch / Sets), read from the source."""
    table = next(s.value for s in tree.body if isinstance(s, ast.AnnAssign | ast.Assign) and
                 getattr(s.target if isinstance(s, ast.AnnAssign) else s.targets[0], "id", "") == "ARGUMENTS")
    kinds: dict[str, set[str]] = {"Launch": set(), "Sets": set(), "all": set()}
    for key, value in zip(table.keys, table.values):
        kinds.setdefault(getattr(value.func, "id", ""), set()).add(key.value)
        kinds["all"].add(key.value)
    return kinds


def argument_problems(launch: ModuleType) -> list[str]:
    """Every node-parameter argument defaults to "", names a spec of each node it sets (one type, one set of
    choices), and its choices are the spec's; launch-level arguments set no node parameter."""
    problems = []
    specs_of = {}
    for name, argument in launch.ARGUMENTS.items():
        if isinstance(argument, launch.Launch):
            continue
        specs = specs_of[name] = []
        for executable in argument.nodes:
            table = {s.name: s for s in NODE_PARAMS.get(executable, ())}
            if executable not in NODE_PARAMS:
                problems.append(f"{name}: {executable} is no node of NODE_PARAMS")
            elif argument.parameter in BUILT_IN_PARAMETERS:
                specs.append(launch.spec(name))
            elif argument.parameter not in table:
                problems.append(f"{name}: {executable} declares no parameter {argument.parameter!r}")
            else:
                specs.append(table[argument.parameter])
        if len({(s.kind, s.choices) for s in specs}) > 1:
            problems.append(f"{name}: the nodes' specs of {argument.parameter} differ in type or choices")
        if specs and specs[0].kind not in (bool, int, float, str):
            problems.append(f"{name}: no launch text for a {specs[0].kind.__name__} parameter")
    if problems:
        return problems
    for name, argument in declared(launch).items():
        default, choices = argument.kwargs["default_value"], argument.kwargs.get("choices")
        if name not in specs_of:
            if choices not in (None, ["true", "false"]):
                problems.append(f"{name}: launch-level choices {choices}")
            continue
        if default != "":
            problems.append(f"{name}: default {default!r}, not \"\" (not given)")
        spec = specs_of[name][0]
        wanted = ["", "true", "false"] if spec.kind is bool else ["", *spec.choices] if spec.choices else None
        if choices != wanted:
            problems.append(f"{name}: choices {choices}, the spec's are {wanted}")
    return problems


def not_given_problems(launch: ModuleType) -> list[str]:
    """With no node-parameter argument given, every node gets the params file and nothing that overrides it."""
    problems = []
    nodes = simulate(launch, **EVERYTHING_ON)
    if set(nodes) != set(NODE_PARAMS) - {"adversarial_injector_node"}:
        problems.append(f"started {sorted(nodes)}")
    for executable, node in nodes.items():
        extra = {k: v for k, v in passed(node).items() if k not in SET_BY_LAUNCH.get(executable, ())}
        if extra:
            problems.append(f"{executable}: not given, yet passed: {extra}")
        if not node["parameters"] or node["parameters"][0] != PARAMS_FILE:
            problems.append(f"{executable}: the params file is not the first parameters entry: {node['parameters']}")
    injector = simulate(launch, attack="fgsm")["adversarial_injector_node"]
    if passed(injector) != {"attack": "fgsm", "wait_for_subscribers": 1}:  # the one classifier that runs
        problems.append(f"adversarial_injector_node with only attack given: {passed(injector)}")
    return problems


def given_problems(launch: ModuleType) -> list[str]:
    """A given argument reaches exactly the nodes it names, as the spec's type, after the params file."""
    problems = []
    baseline = {e: passed(n) for e, n in simulate(launch, **EVERYTHING_ON, attack="none").items()}
    for name, argument in launch.ARGUMENTS.items():
        if isinstance(argument, launch.Launch) or name == "attack":
            continue
        text = example_value(launch, name)
        if text == "":
            continue
        nodes = simulate(launch, **EVERYTHING_ON, attack="none", **{name: text})
        spec = launch.spec(name)
        for executable, node in nodes.items():
            changed = {k: v for k, v in passed(node).items() if baseline[executable].get(k, object()) != v}
            value = text == "true" if spec.kind is bool else spec.kind(text)
            wanted = {argument.parameter: value} if executable in argument.nodes else {}
            if changed != wanted or any(type(v) is not spec.kind for v in changed.values()):
                problems.append(f"{name}:={text}: {executable} gets {changed}, not {wanted}")
            if node["parameters"][0] != PARAMS_FILE:
                problems.append(f"{name}:={text}: {executable}: the params file is not first")
    return problems


def wiring_problems(launch: ModuleType) -> list[str]:
    """The injector sits between the camera and every classifier when an attack is given."""
    problems = []
    camera = "/camera/image_raw"
    for attack, classifier_input in (("", camera), ("none", camera), ("eye_boxes", "image_attacked")):
        nodes = simulate(launch, **EVERYTHING_ON, image_topic=camera, **({"attack": attack} if attack else {}))
        remapped = {e: dict(n["remappings"])["image"] for e, n in nodes.items()}
        wanted = {"image_source_node": camera, "landmark_emotion_node": classifier_input,
                  "resnet_emotion_node": classifier_input, "scorer_node": "image"}
        if classifier_input != camera:
            wanted["adversarial_injector_node"] = camera
        if remapped != wanted:
            problems.append(f"attack={attack!r}: inputs {remapped}, not {wanted}")
    only_landmark = simulate(launch, use_scorer="true")
    if passed(only_landmark["scorer_node"]).get("detail_topics") != ["emotion/detail"]:
        problems.append(f"scorer_node detail_topics {passed(only_landmark['scorer_node'])}")
    for given, readers, resnet_hri in (({}, 1, None), ({"use_resnet": "true"}, 2, False),
                                       ({"use_resnet": "true", "attack": "jaw_box"}, 1, False),
                                       ({"use_resnet": "true", "use_landmark": "false"}, 1, None)):
        nodes = simulate(launch, use_source="true", **given)
        waits = passed(nodes["image_source_node"]).get("wait_for_subscribers")
        hri = passed(nodes.get("resnet_emotion_node", {"parameters": []})).get("publish_hri")
        injector_waits = passed(nodes.get("adversarial_injector_node", {"parameters": []})).get(
            "wait_for_subscribers")
        if (waits, hri, injector_waits) != (readers, resnet_hri, 2 if "attack" in given else None):
            problems.append(f"{given}: the source waits for {waits} readers, resnet publish_hri {hri}, "
                            f"the injector waits for {injector_waits}")
    scored = simulate(launch, use_source="true", use_scorer="true")
    if (passed(scored["image_source_node"]).get("wait_for_scorer"),
            passed(scored["scorer_node"]).get("wait_for_classifiers")) != (True, True):
        problems.append("with a scorer the source does not wait for it, or it does not wait for the classifiers")
    if set(simulate(launch)) != {"landmark_emotion_node"}:
        problems.append(f"by default started {sorted(simulate(launch))}")
    spaced = simulate(launch, namespace="robot1", dds_profile="")["landmark_emotion_node"]
    if spaced["namespace"] != "robot1" or spaced["additional_env"] is not None:
        problems.append(f"namespace / dds_profile: {spaced['namespace']!r}, {spaced['additional_env']!r}")
    return problems


def launch_problems(source: str, launch: ModuleType) -> list[str]:
    problems = static_problems(source)
    for check in (argument_problems, not_given_problems, given_problems, wiring_problems):
        try:
            problems += check(launch)
        except (KeyError, RuntimeError, StopIteration, TypeError, ValueError) as error:
            problems.append(f"{check.__name__}: {type(error).__name__}: {error}")
    return problems


# --- tests ---------------------------------------------------------------------------------------------------------

def test_every_node_started_is_a_console_script_declaring_its_node_params_table():
    started = set(simulate(load(), **EVERYTHING_ON, attack="fgsm"))
    assert started == set(NODE_PARAMS)
    scripts = console_scripts()
    assert started <= set(scripts)
    for executable in started:
        assert declared_table(executable) is NODE_PARAMS[executable], executable


def test_launch_file_reads_only_declared_arguments_and_every_launch_level_one():
    assert static_problems(LAUNCH.read_text()) == []


def test_node_parameter_arguments_default_to_not_given_and_take_name_type_and_choices_from_the_specs():
    launch = load()
    assert argument_problems(launch) == []
    sets = {name for name, a in launch.ARGUMENTS.items() if isinstance(a, launch.Sets)}
    assert {"loop", "rate", "epsilon", "attack", "source_type", "box_fill", "device", "detect_every"} <= sets
    assert declared(launch)["attack"].kwargs["choices"][1:] == list(
        {s.name: s for s in NODE_PARAMS["adversarial_injector_node"]}["attack"].choices)


def test_arguments_not_given_do_not_override_the_params_file():
    assert not_given_problems(load()) == []


def test_given_arguments_override_the_params_file_with_the_specs_type():
    launch = load()
    assert given_problems(launch) == []
    nodes = simulate(launch, use_source="true", use_scorer="true", loop="true", rate="15", source="0",
                     detect_every="1")
    given = {"loop": True, "rate": 15.0, "source": "0", "wait_for_subscribers": 1, "wait_for_scorer": True}
    assert passed(nodes["image_source_node"]) == given
    assert passed(nodes["scorer_node"]) == {"source": "0", "detail_topics": ["emotion/detail"],
                                            "wait_for_classifiers": True}
    assert passed(nodes["landmark_emotion_node"]) == {"detect_every": 1}
    assert nodes["image_source_node"]["parameters"] == [PARAMS_FILE, given]


@pytest.mark.parametrize(("given", "reason"), [
    ({"epsilon": "2"}, "epsilon must be <= 1.0"),
    ({"detect_every": "1.5"}, "detect_every:=1.5: expected an int"),
    ({"rate": "fast"}, "rate:=fast: expected a float"),
    ({"attack_model": "/no/such/model.pt"}, "no such file"),
])
def test_given_values_are_checked_against_the_spec(given: dict[str, str], reason: str):
    with pytest.raises(RuntimeError, match=re.escape(reason)):
        simulate(load(), **given)


def test_an_empty_params_file_leaves_the_nodes_own_defaults():
    node = simulate(load(), params_file="", loop="true", use_source="true")["image_source_node"]
    assert node["parameters"] == [{"loop": True, "wait_for_subscribers": 1}]


def test_wiring_the_injector_in_front_of_the_classifiers_namespace_and_dds_profile():
    assert wiring_problems(load()) == []


def example_lines() -> list[tuple[str, str]]:
    """(where, line) of every `ros2 launch emotion_perception emotion_perception.launch.py` example."""
    found = []
    for path in [LAUNCH, *sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]:
        text = path.read_text().replace("\\\n", " ")
        found += [(path.name, line.strip()) for line in text.splitlines()
                  if "ros2 launch emotion_perception emotion_perception.launch.py" in line]
    return found


@pytest.mark.parametrize(("where", "line"), example_lines())
def test_example_command_lines_are_valid(where: str, line: str):
    words = shlex.split(line.split("emotion_perception.launch.py", 1)[1].split("#")[0].replace("&", ""))
    given = dict(word.split(":=", 1) for word in words)
    assert simulate(load(), **given)


@pytest.mark.parametrize(("old", "new", "problem"), [
    # the bug this file had: launch arguments with defaults, passed whether given or not
    ('        declared[name] = (NOT_GIVEN, description,', '        declared[name] = (_text(specification.default), '
     'description,', "loop: default 'false', not \"\""),
    ("and given[name] != NOT_GIVEN:", "and (given[name] != NOT_GIVEN or name == 'source'):",
     "image_source_node: not given, yet passed: {'source': ''}"),
    ("parameters=[*params_file, parameters[executable]])", "parameters=[parameters[executable], *params_file])",
     "the params file is not the first"),
    ('"attack_fraction": Sets("fraction",', '"attack_fraction": Sets("fractions",',
     "adversarial_injector_node declares no parameter 'fractions'"),
    ('"source": Sets("source", (SOURCE, SCORER)', '"source": Sets("source", (SOURCE, "scorer")',
     "scorer is no node of NODE_PARAMS"),
    ("else list(specification.choices)", "else list(specification.choices)[:-1]", "box_fill: choices"),
    ('"loop": Sets("loop", (SOURCE,)),', '"loop": Launch("true", "start again", BOOLEANS),',
     "'loop' is declared but _nodes never reads it"),
    ('"device": Sets("device", ("resnet_emotion_node",)),', '"device": Sets("device", CLASSIFIERS),',
     "landmark_emotion_node declares no parameter 'device'"),
    ("for executable in argument.nodes:\n", "for executable in argument.nodes[:1]:\n",
     "detect_every:=100: resnet_emotion_node gets {}"),
    ("INJECTOR: camera if attacked else None,", "INJECTOR: None,", "inputs"),
    ('"image" if switch["use_scorer"]', '"image" if switch["use_scorers"]', "'use_scorers', which is not"),
    ("value = _typed(name, given[name])", "value = given[name]", "loop:=true: image_source_node gets {'loop': 'true'}"),
    ("for executable in (INJECTOR, *CLASSIFIERS) if", "for executable in CLASSIFIERS if",
     "'attack': 'jaw_box'}: the source waits for 0 readers"),
    ('if switch["use_landmark"] and switch["use_resnet"]:', 'if switch["use_resnet"]:',
     "'use_landmark': 'false'}: the source waits for 1 readers, resnet publish_hri False"),
])
def test_the_checks_catch_a_broken_launch_file(tmp_path: Path, old: str, new: str, problem: str):
    source = LAUNCH.read_text()
    assert old in source
    changed = source.replace(old, new)
    try:
        launch = load(changed, tmp_path)
        problems = launch_problems(changed, launch)
    except (KeyError, RuntimeError, TypeError, ValueError) as error:  # so broken that it does not even run
        problems = [f"{type(error).__name__}: {error}"]
    assert any(problem in p for p in problems), problems


def test_the_real_launch_file_passes_every_check():
    assert launch_problems(LAUNCH.read_text(), load()) == []


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_config_files_parse_and_pass_the_nodes_own_validation(path: Path):
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict) and document, f"{path.name}: empty or not a mapping"
    for key, section in document.items():
        executable = key.rsplit("/", 1)[-1]
        assert executable in NODE_PARAMS, f"{path.name}: section {key!r} names no node of this package"
        values = {name: value for name, value in section["ros__parameters"].items()
                  if name not in BUILT_IN_PARAMETERS}
        assert validate(NODE_PARAMS[executable], values) == [], f"{path.name}: {key}"
