"""Brings up the emotion perception pipeline: camera topic -> [adversarial injector] -> classifier nodes.

    ros2 launch emotion_perception emotion_perception.launch.py image_topic:=/camera/image_raw
    ros2 launch emotion_perception emotion_perception.launch.py use_source:=true source:=/data/faces
    ros2 launch emotion_perception emotion_perception.launch.py use_resnet:=true attack:=fgsm epsilon:=0.01
    ros2 launch emotion_perception emotion_perception.launch.py attack:=eye_boxes attack_fraction:=0.5 box_fill:=mean
    ros2 launch emotion_perception emotion_perception.launch.py use_source:=true source_type:=bag source:=BAG \
        loop:=false use_scorer:=true report_dir:=/tmp/replay_report detect_every:=1 detect_tiles:=1

The params file (`params_file`, by default the shipped config/emotion_perception.yaml, which holds every node
parameter's default) sets the nodes' parameters. A launch argument that sets a node parameter (e.g. `loop`,
`epsilon`, `detect_every`) defaults to "" (not given) and is then not passed at all, so the params file decides;
given, it overrides the params file. Its type, range and choices are the node parameter's spec
(`emotion_perception.ros.params`). A string parameter cannot be set to "" here: use the params file for that.

landmark_emotion_node is a managed (lifecycle) node; its `autostart` parameter (true in the shipped params file,
or `autostart:=false`) configures and activates it at start, so no lifecycle manager is needed. With
`autostart:=false` it stays unconfigured until e.g. `ros2 lifecycle set /landmark_emotion_node configure`.
With `attack` given and other than none, adversarial_injector_node subscribes to the camera topic and every
classifier subscribes to its `image_attacked` output instead of the camera.

Whatever the params file says, the launch file sets the scorer's `detail_topics` (the classifiers it starts),
image_source_node's `wait_for_subscribers` (the nodes it starts that read the camera topic, so that a short folder
or bag is not over before they listen) and `wait_for_scorer`, adversarial_injector_node's `wait_for_subscribers`
(the classifiers under attack), the scorer's `wait_for_classifiers` and, when both classifiers run,
resnet_emotion_node's `publish_hri` to false (one publisher of the REP-155 faces).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from emotion_perception.core.params import ParamSpec
from emotion_perception.ros.params import NODE_PARAMS

PACKAGE = "emotion_perception"
BOOLEANS = ["true", "false"]
NOT_GIVEN = ""
DDS_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
SOURCE, INJECTOR, SCORER = "image_source_node", "adversarial_injector_node", "scorer_node"
CLASSIFIERS = ("landmark_emotion_node", "resnet_emotion_node")
EVERY_NODE = tuple(NODE_PARAMS)
# declared by rclpy itself in every node, so in no node's table
USE_SIM_TIME = ParamSpec("use_sim_time", False, "follow /clock (e.g. `ros2 bag play --clock`)")
# files of share/emotion_perception/config that are the default of a launch argument
CONFIG_FILES = {"params_file": "emotion_perception.yaml", "dds_profile": "fastdds_large_frames.xml"}


class Launch(NamedTuple):
    """An argument of the launch itself (which nodes run, topics, files); a default of None is in CONFIG_FILES."""

    default: str | None
    description: str
    choices: list[str] | None = None


class Sets(NamedTuple):
    """An argument that sets the node parameter `parameter` of `nodes`; not given (""), it is not passed."""

    parameter: str
    nodes: tuple[str, ...]
    about: str = ""  # what the launch file does with it besides


ARGUMENTS: dict[str, Launch | Sets] = {
    "namespace": Launch("", "namespace of every node and topic"),
    "image_topic": Launch("image", "camera topic the pipeline reads (e.g. /camera/image_raw)"),
    "params_file": Launch(None, "node parameters (YAML); the node-parameter arguments that are given override it; "
                          "empty: none, the nodes' own defaults"),
    "dds_profile": Launch(None, "Fast DDS profile for every node (default: the shipped 32 MB shared-memory profile, "
                          "which camera-sized frames need); empty: keep the environment's"),
    "use_sim_time": Sets("use_sim_time", EVERY_NODE),
    "autostart": Sets("autostart", CLASSIFIERS, "false: a lifecycle manager configures and activates them"),
    "use_landmark": Launch("true", "run landmark_emotion_node (dlib landmarks + RandomForest) -> emotion", BOOLEANS),
    "use_resnet": Launch("false", "run resnet_emotion_node (CNN) -> emotion_resnet", BOOLEANS),
    "device": Sets("device", ("resnet_emotion_node",)),
    "publish_debug_image": Sets("publish_debug_image", CLASSIFIERS),
    "detect_every": Sets("detect_every", CLASSIFIERS, "1 with detect_tiles 1: detect on every frame, as "
                         "`bag evaluate`"),
    "detect_tiles": Sets("detect_tiles", CLASSIFIERS),
    "attack": Sets("attack", (INJECTOR,), "given and not none: adversarial_injector_node runs between image_topic "
                   "and every classifier"),
    "epsilon": Sets("epsilon", (INJECTOR,)),
    "attack_fraction": Sets("fraction", (INJECTOR,)),
    "attack_seed": Sets("seed", (INJECTOR,)),
    "attack_steps": Sets("steps", (INJECTOR,)),
    "attack_model": Sets("model_path", (INJECTOR,)),
    "eye_margin": Sets("eye_margin", (INJECTOR,)),
    "jaw_margin": Sets("jaw_margin", (INJECTOR,)),
    "box_fill": Sets("box_fill", (INJECTOR,)),
    "noise_sigma": Sets("noise_sigma", (INJECTOR,)),
    "noise_amount": Sets("noise_amount", (INJECTOR,)),
    "target_image": Sets("target_image", (INJECTOR,), "required by attack scaling"),
    "use_source": Launch("false", "run image_source_node publishing on image_topic", BOOLEANS),
    "source_type": Sets("source_type", (SOURCE,)),
    "source": Sets("source", (SOURCE, SCORER), "scorer_node writes it into its report"),
    "rate": Sets("rate", (SOURCE,)),
    "loop": Sets("loop", (SOURCE,)),
    "rate_factor": Sets("rate_factor", (SOURCE,)),
    "use_scorer": Launch("false", "run scorer_node: running accuracy of every classifier against "
                         "ground_truth/emotion", BOOLEANS),
    "report_dir": Sets("report_dir", (SCORER,)),
}


def spec(argument: str) -> ParamSpec:
    """The spec of the node parameter a `Sets` argument sets (that of its first node)."""
    parameter, nodes, _ = ARGUMENTS[argument]
    if parameter == USE_SIM_TIME.name:
        return USE_SIM_TIME
    found = [s for s in NODE_PARAMS[nodes[0]] if s.name == parameter]
    if not found:
        raise KeyError(f"launch argument {argument}: {nodes[0]} has no parameter {parameter!r}")
    return found[0]


def _text(value: Any) -> str:
    """A spec default as launch argument text."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def declarations() -> dict[str, tuple[str | None, str, list[str] | None]]:
    """name: (default, description, choices) of every launch argument, in order."""
    declared = {}
    for name, argument in ARGUMENTS.items():
        if isinstance(argument, Launch):
            declared[name] = tuple(argument)
            continue
        parameter, nodes, about = argument
        specification = spec(name)
        choices = BOOLEANS if specification.kind is bool else list(specification.choices)
        whose = {EVERY_NODE: "every node", CLASSIFIERS: "the classifiers"}.get(nodes, " and ".join(nodes))
        default = _text(specification.default) or '""'
        description = (f"sets {parameter} of {whose}: {specification.description}{'; ' + about if about else ''}. "
                       f"Not given: the params file's value (default {default})")
        declared[name] = (NOT_GIVEN, description, [NOT_GIVEN, *choices] if choices else None)
    return declared


def _typed(argument: str, text: str) -> bool | int | float | str:
    """A given launch argument's text as a value of its node parameter's type, checked against the spec."""
    specification = spec(argument)
    kind = specification.kind
    try:
        value = {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
    except (KeyError, ValueError):
        expected = {bool: "true or false", int: "an int", float: "a float"}[kind]
        raise RuntimeError(f"launch argument {argument}:={text}: expected {expected}") from None
    reason = specification.check(value)
    if reason:
        raise RuntimeError(f"launch argument {argument}:={text}: {reason}")
    return value


def overrides(given: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """executable: the node parameters set by the arguments that were given (text other than "")."""
    values: dict[str, dict[str, Any]] = {executable: {} for executable in NODE_PARAMS}
    for name, argument in ARGUMENTS.items():
        if isinstance(argument, Sets) and given[name] != NOT_GIVEN:
            value = _typed(name, given[name])
            for executable in argument.nodes:
                values[executable][argument.parameter] = value
    return values


def _nodes(context, *args, **kwargs):
    config = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    switch = {name: config[name] == "true" for name in ("use_source", "use_landmark", "use_resnet", "use_scorer")}
    camera = config["image_topic"]
    attacked = config["attack"] not in (NOT_GIVEN, "none")
    # executable: remapping of its `image` input; classifiers read the injector's output under attack
    wanted = {
        SOURCE: camera if switch["use_source"] else None,
        INJECTOR: camera if attacked else None,
        "landmark_emotion_node": ("image_attacked" if attacked else camera) if switch["use_landmark"] else None,
        "resnet_emotion_node": ("image_attacked" if attacked else camera) if switch["use_resnet"] else None,
        SCORER: "image" if switch["use_scorer"] else None,  # reads no image: a no-op remapping
    }
    parameters = overrides(config)
    if switch["use_landmark"] and switch["use_resnet"]:  # one publisher of the REP-155 faces: the landmark node
        parameters["resnet_emotion_node"]["publish_hri"] = False
    # the source holds its first frame until the nodes reading the camera topic listen: a short folder or bag is
    # otherwise over before they have loaded their models
    readers = [executable for executable in (INJECTOR, *CLASSIFIERS) if wanted[executable] == camera]
    parameters[SOURCE]["wait_for_subscribers"] = len(readers)
    # ... and, under attack, the injector until the classifiers listen; with a scorer, until the scorer has seen
    # every classifier (a classifier it discovers late would miss the frames of a short replay)
    if attacked:
        parameters[INJECTOR]["wait_for_subscribers"] = sum(wanted[c] == "image_attacked" for c in CLASSIFIERS)
    if switch["use_scorer"]:
        parameters[SOURCE]["wait_for_scorer"] = parameters[SCORER]["wait_for_classifiers"] = True
    # the scorer scores the classifiers that run, whatever the params file lists
    parameters[SCORER]["detail_topics"] = [
        topic for topic, used in (("emotion/detail", switch["use_landmark"]),
                                  ("emotion_resnet/detail", switch["use_resnet"])) if used]
    params_file = [config["params_file"]] if config["params_file"] else []
    return [
        Node(package=PACKAGE, executable=executable, namespace=config["namespace"], output="screen",
             emulate_tty=True, remappings=[("image", image)],
             additional_env={DDS_PROFILE_VARIABLE: config["dds_profile"]} if config["dds_profile"] else None,
             parameters=[*params_file, parameters[executable]])  # later entries win: given arguments
        for executable, image in wanted.items()
        if image is not None and (executable != SCORER or parameters[SCORER]["detail_topics"])
    ]


def generate_launch_description() -> LaunchDescription:
    config_dir = [FindPackageShare(PACKAGE), "config"]
    files = {name: PathJoinSubstitution([*config_dir, file]) for name, file in CONFIG_FILES.items()}
    arguments = [
        DeclareLaunchArgument(name, default_value=files[name] if default is None else default,
                              description=description, **({"choices": choices} if choices else {}))
        for name, (default, description, choices) in declarations().items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
