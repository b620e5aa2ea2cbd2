"""Brings up the emotion perception pipeline: camera topic -> [adversarial injector] -> classifier nodes.

    ros2 launch emotion_perception emotion_perception.launch.py image_topic:=/camera/image_raw
    ros2 launch emotion_perception emotion_perception.launch.py use_source:=true source:=/data/faces
    ros2 launch emotion_perception emotion_perception.launch.py use_resnet:=true attack:=fgsm epsilon:=0.01
    ros2 launch emotion_perception emotion_perception.launch.py attack:=eye_boxes attack_fraction:=0.5 box_fill:=mean
    ros2 launch emotion_perception emotion_perception.launch.py use_source:=true source_type:=bag source:=BAG \
        loop:=false use_scorer:=true report_dir:=/tmp/replay_report detect_every:=1 detect_tiles:=1

landmark_emotion_node is a managed (lifecycle) node; its `autostart` parameter (true here unless
`autostart:=false`) configures and activates it at start, so no lifecycle manager is needed. With
`autostart:=false` it stays unconfigured until e.g. `ros2 lifecycle set /landmark_emotion_node configure`.
With `attack` other than none, adversarial_injector_node subscribes to the camera topic and every
classifier subscribes to its `image_attacked` output instead of the camera.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "emotion_perception"
ATTACKS = ["none", "eye_boxes", "jaw_box", "fgsm", "pgd", "scaling", "gaussian", "salt_pepper"]
BOOLEANS = ["true", "false"]
DDS_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
NUMBERS = ["rate", "epsilon", "rate_factor", "attack_fraction", "eye_margin", "jaw_margin", "noise_sigma",
           "noise_amount"]
INTEGERS = ["detect_every", "detect_tiles", "attack_seed", "attack_steps"]
# Arguments that default to "": not given, the node keeps the value of the params file.
OPTIONAL = ["detect_every", "detect_tiles", "rate_factor", "attack_fraction", "attack_seed", "attack_steps",
            "attack_model", "eye_margin", "jaw_margin", "box_fill", "noise_sigma", "noise_amount", "target_image"]

# name: (default, description, choices or None); a default of None is an installed config file (see `defaults`).
ARGUMENTS = {
    "namespace": ("", "namespace of every node and topic", None),
    "image_topic": ("image", "camera topic the pipeline reads (e.g. /camera/image_raw)", None),
    "params_file": (None, "node parameters (YAML)", None),
    "dds_profile": (None, "Fast DDS profile for every node (default: the shipped 32 MB shared-memory profile, which "
                    "camera-sized frames need); empty: keep the environment's", None),
    "use_sim_time": ("false", "use /clock (e.g. `ros2 bag play --clock`)", BOOLEANS),
    "autostart": ("true", "configure and activate the classifier nodes at start (false: a lifecycle manager does)",
                  BOOLEANS),
    "use_landmark": ("true", "run landmark_emotion_node (dlib landmarks + RandomForest) -> emotion", BOOLEANS),
    "use_resnet": ("false", "run resnet_emotion_node (CNN) -> emotion_resnet", BOOLEANS),
    "device": ("auto", "where the CNN runs (resnet node)", ["auto", "cpu", "cuda"]),
    "publish_debug_image": ("false", "classifiers publish annotated debug images", BOOLEANS),
    "detect_every": ("", "classifiers: detection sweep every N frames (1 with detect_tiles 1: detect on every "
                     "frame, as `bag evaluate`)", None),
    "detect_tiles": ("", "classifiers: strips per detection sweep, one per frame (1: whole frame at once)", None),
    "attack": ("none", "attack applied between the camera and every classifier", ATTACKS),
    "epsilon": ("0.01", "attack strength: L-inf bound on [0,1] pixels (fgsm, pgd)", None),
    "attack_fraction": ("", "injector: fraction of frames attacked (seeded draw)", None),
    "attack_seed": ("", "injector: seed of the frame draw and of the attacks' random parts", None),
    "attack_steps": ("", "injector: pgd iterations", None),
    "attack_model": ("", "injector: CNN weights (.pt) the fgsm/pgd perturbations are crafted on", None),
    "eye_margin": ("", "injector: eye_boxes growth around each eye, in eye widths", None),
    "jaw_margin": ("", "injector: jaw_box growth around the jaw, in jaw widths", None),
    "box_fill": ("", "injector: box colour: black, white, mean or noise", None),
    "noise_sigma": ("", "injector: gaussian sigma on [0,1] pixels", None),
    "noise_amount": ("", "injector: salt_pepper fraction of pixels", None),
    "target_image": ("", "injector: scaling attack's target image (required for attack:=scaling)", None),
    "use_source": ("false", "run image_source_node publishing on image_topic", BOOLEANS),
    "source_type": ("folder", "image_source_node: folder, video, camera or bag", ["folder", "video", "camera", "bag"]),
    "source": ("", "image_source_node: folder, video file, camera index or bag; empty: bundled demo frames", None),
    "rate": ("10.0", "image_source_node: frames per second (folder, video, camera)", None),
    "loop": ("true", "image_source_node: start again after the last frame", BOOLEANS),
    "rate_factor": ("", "image_source_node: bag replay speed on the recorded timeline", None),
    "use_scorer": ("false", "run scorer_node: running accuracy of every classifier against ground_truth/emotion",
                   BOOLEANS),
    "report_dir": ("", "scorer_node: folder for report.md and results.json; empty: no report", None),
}

# executable: {node parameter: the launch argument that sets it}; every node also gets use_sim_time.
NODE_PARAMETERS = {
    "image_source_node": {"source_type": "source_type", "source": "source", "rate": "rate", "loop": "loop",
                          "rate_factor": "rate_factor"},
    "adversarial_injector_node": {
        "attack": "attack", "epsilon": "epsilon", "fraction": "attack_fraction", "seed": "attack_seed",
        "steps": "attack_steps", "model_path": "attack_model", "eye_margin": "eye_margin", "jaw_margin": "jaw_margin",
        "box_fill": "box_fill", "noise_sigma": "noise_sigma", "noise_amount": "noise_amount",
        "target_image": "target_image",
    },
    "landmark_emotion_node": {"autostart": "autostart", "publish_debug_image": "publish_debug_image",
                              "detect_every": "detect_every", "detect_tiles": "detect_tiles"},
    "resnet_emotion_node": {"autostart": "autostart", "publish_debug_image": "publish_debug_image",
                            "device": "device", "detect_every": "detect_every", "detect_tiles": "detect_tiles"},
    "scorer_node": {"report_dir": "report_dir", "source": "source"},
}


def _typed(name: str, text: str) -> bool | float | int | str:
    """A launch argument's text as the node parameter type: true/false, numbers, or the text itself."""
    if ARGUMENTS[name][2] is BOOLEANS:
        return text.lower() == "true"
    if name in OPTIONAL and text == "":
        return text
    if name in NUMBERS or name in INTEGERS:
        try:
            return int(text) if name in INTEGERS else float(text)
        except ValueError:
            kind = "a whole number" if name in INTEGERS else "a number"
            raise RuntimeError(f"launch argument {name}: expected {kind}, got {text!r}") from None
    return text


def _nodes(context, *args, **kwargs):
    config = {name: _typed(name, LaunchConfiguration(name).perform(context)) for name in ARGUMENTS}
    camera = config["image_topic"]
    attacked = config["attack"] != "none"
    # executable: remapping of its `image` input; classifiers read the injector's output under attack
    wanted = {
        "image_source_node": camera if config["use_source"] else None,
        "adversarial_injector_node": camera if attacked else None,
        "landmark_emotion_node": ("image_attacked" if attacked else camera) if config["use_landmark"] else None,
        "resnet_emotion_node": ("image_attacked" if attacked else camera) if config["use_resnet"] else None,
        "scorer_node": "image" if config["use_scorer"] else None,  # reads no image: a no-op remapping
    }
    scored = [topic for topic, used in (("emotion/detail", config["use_landmark"]),
                                        ("emotion_resnet/detail", config["use_resnet"])) if used]
    return [
        Node(package=PACKAGE, executable=executable, namespace=config["namespace"], output="screen",
             emulate_tty=True, remappings=[("image", image)],
             additional_env={DDS_PROFILE_VARIABLE: config["dds_profile"]} if config["dds_profile"] else None,
             parameters=[config["params_file"], {
                 "use_sim_time": config["use_sim_time"],
                 **{parameter: config[argument] for parameter, argument in NODE_PARAMETERS[executable].items()
                    if not (argument in OPTIONAL and config[argument] == "")},
                 **(dict(detail_topics=scored) if executable == "scorer_node" else {}),
             }])
        for executable, image in wanted.items() if image is not None and (executable != "scorer_node" or scored)
    ]


def generate_launch_description() -> LaunchDescription:
    config_dir = [FindPackageShare(PACKAGE), "config"]
    defaults = {"params_file": PathJoinSubstitution([*config_dir, "emotion_perception.yaml"]),
                "dds_profile": PathJoinSubstitution([*config_dir, "fastdds_large_frames.xml"])}
    arguments = [
        DeclareLaunchArgument(name, default_value=defaults.get(name, default), description=description,
                              **({"choices": choices} if choices else {}))
        for name, (default, description, choices) in ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
