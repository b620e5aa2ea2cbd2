"""The commands the README and the docs give a robot team, run for real: `ros2 launch`, `ros2 run`, `ros2 topic
echo`, `ros2 lifecycle`, `ros2 param`, `ros2 node`, `ros2 pkg`, from the ROS 2 overlay (conftest.py's
`ros_overlay`, built by tools/build_ros_overlay.sh when missing), on real DDS kept on this machine (the session's
private domain, localhost discovery, the loopback-only Fast DDS profile).

`RUN_BY` lists every `ros2` command of README.md and docs/*.md with the test that runs it (its placeholders,
such as folders, bags and the camera topic, replaced by the test's own); `NOT_RUN` the few that need what this
machine lacks, with the reason. A test fails when the docs hold a `ros2` command in neither. Every `ros2 launch`
is stopped with Ctrl-C (SIGINT to its process group), after which it and all its nodes must exit 0, with no
[ERROR] line and no traceback.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from bag_data import make_dataset
from face_images import happy_frame
from overlay_helpers import REPO, TRACEBACK, assert_stops_cleanly, command_words
from ros_helpers import Probe, image_msg
from sensor_msgs.msg import Image
from std_msgs.msg import String

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LAUNCH = "ros2 launch emotion_perception emotion_perception.launch.py"
CAMERA = "/camera/image_raw"

# every `ros2` command of the docs -> the test of this file that runs it
RUN_BY = {
    f"{LAUNCH} image_topic:=/camera/image_raw": "test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail",
    "ros2 topic echo /emotion": "test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail",
    "ros2 topic echo /emotion --once": "test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail",
    "ros2 pkg prefix emotion_perception": "test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail",
    f"{LAUNCH} use_source:=true source:=/data/faces rate:=15.0": "test_ros2_cli_launch_with_a_folder_source",
    "ros2 topic echo /emotion std_msgs/msg/String --once": "test_ros2_cli_launch_with_a_folder_source",
    "ros2 lifecycle get /landmark_emotion_node": "test_ros2_cli_launch_with_a_folder_source",
    "ros2 param set /landmark_emotion_node detect_every 5": "test_ros2_cli_launch_with_a_folder_source",
    "ros2 node list": "test_ros2_cli_launch_with_a_folder_source",
    f"{LAUNCH} autostart:=false": "test_ros2_cli_lifecycle_and_parameters",
    "ros2 lifecycle set /landmark_emotion_node configure": "test_ros2_cli_lifecycle_and_parameters",
    "ros2 lifecycle set /landmark_emotion_node activate": "test_ros2_cli_lifecycle_and_parameters",
    "ros2 param set /landmark_emotion_node detect_every 500": "test_ros2_cli_lifecycle_and_parameters",
    "ros2 param set": "test_ros2_cli_lifecycle_and_parameters",
    f"{LAUNCH} use_source:=true source_type:=bag source:=runs/jaffe_bag loop:=false use_resnet:=true "
    "attack:=jaw_box use_scorer:=true report_dir:=runs/jaffe_live detect_every:=1 detect_tiles:=1":
        "test_ros2_cli_whole_replay_experiment_from_the_launch_file",
    f"{LAUNCH} use_resnet:=true attack:=fgsm epsilon:=0.01": "test_ros2_cli_launch_examples_start_their_nodes",
    f"{LAUNCH} namespace:=robot1 publish_debug_image:=true": "test_ros2_cli_launch_examples_start_their_nodes",
    f"{LAUNCH} attack:=eye_boxes attack_fraction:=0.5 box_fill:=mean":
        "test_ros2_cli_launch_examples_start_their_nodes",
    f"{LAUNCH} image_topic:=/camera/image_raw use_sim_time:=true": "test_ros2_cli_launch_examples_start_their_nodes",
    # verbs named in the text
    "ros2 launch": "test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail",
    "ros2 topic echo": "test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail",
    "ros2 pkg prefix": "test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail",
    "ros2 lifecycle": "test_ros2_cli_lifecycle_and_parameters",
    "ros2 lifecycle get": "test_ros2_cli_lifecycle_and_parameters",
    "ros2 param": "test_ros2_cli_lifecycle_and_parameters",
    "ros2 run emotion_perception <node>": "test_ros2_cli_run_starts_each_node",
    "ros2 run": "test_ros2_cli_run_starts_each_node",
    "ros2 run emotion_perception resnet_emotion_node --ros-args -p device:=cuda -r image:=/camera/image_raw":
        "test_ros2_cli_run_starts_each_node",
    "ros2 run emotion_perception image_source_node --ros-args -p source:=/data/faces -p rate:=15.0 -p loop:=true":
        "test_ros2_cli_run_starts_each_node",
    "ros2 run emotion_perception image_source_node --ros-args -p source_type:=camera -p source:=/dev/video0":
        "test_ros2_cli_run_starts_each_node",
    "ros2 run emotion_perception image_source_node --ros-args -p source_type:=bag -p source:=run1.mcap "
    "-p rate_factor:=2.0": "test_ros2_cli_run_starts_each_node",
    "ros2 run emotion_perception adversarial_injector_node --ros-args -p attack:=fgsm -p epsilon:=0.01 "
    "-r image:=/camera/image_raw -r image_attacked:=/emotion_input": "test_ros2_cli_run_starts_each_node",
}

ROSBAG2 = ("needs rosbag2 (ros2 bag), which a robot has from apt; neither the PyPI wheels nor the overlay hold it "
           "(bags are read and written here with rosbags, as test_bags.py and test_bag_replay.py do)")
# documented commands that are not run here, and why
NOT_RUN = {
    "ros2 bag record -o ward_run /camera/image_raw /camera/camera_info": ROSBAG2,
    "ros2 bag play ward_run --clock": ROSBAG2,
    "ros2 bag record -o ward_emotions /emotion /emotion/detail /diagnostics": ROSBAG2,
    "ros2 bag": ROSBAG2,
    "ros2 bag play": ROSBAG2,
    "ros2 bag play --clock": ROSBAG2,
}

CODE_SPAN = re.compile(r"`(ros2 [^`]+)`")
IN_CODE = re.compile(r"(?:^|[\s(])(ros2 \S.*)")


def normalized(command: str) -> str:
    """A command without a trailing comment, `&`, or the `)` that closes `$(...)`, its spaces squeezed."""
    return " ".join(re.split(r"\s#|\s&|\)|;|\s\|", command)[0].split())


def commands_in(text: str) -> list[str]:
    """The `ros2` commands of a markdown text: in code blocks (fenced or indented; continuation lines joined), a
    line's command; in the text, every code span that starts with `ros2 `."""
    found, prose, fenced = [], [], False
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            found += [normalized(m.group(1)) for m in [IN_CODE.search(line)] if m]
        else:
            prose.append(line)
    return found + [normalized(span) for span in CODE_SPAN.findall("\n".join(prose))]


def documented_commands() -> dict[str, str]:
    """command -> the first doc that gives it."""
    found: dict[str, str] = {}
    for path in DOCS:
        for command in commands_in(path.read_text()):
            found.setdefault(command, path.name)
    return found


def documented(command: str, replace: dict[str, str] | None = None) -> list[str]:
    """The words of a documented command, placeholders replaced (see `overlay_helpers.command_words`)."""
    assert command in RUN_BY, f"not a documented command: {command}"
    return command_words(command, replace)


# --- the list --------------------------------------------------------------------------------------------------------


def commands_run_by(test: str) -> set[str]:
    """The commands a test of this file passes to `documented`, evaluated from its source."""
    tree = ast.parse(Path(__file__).read_text())
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == test), None)
    assert function is not None, f"no test {test}"
    calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)
             and getattr(node.func, "id", "") == "documented"]
    return {eval(compile(ast.Expression(call.args[0]), __file__, "eval"), globals()) for call in calls}


def test_ros2_cli_every_documented_command_is_run_by_a_test():
    docs = documented_commands()
    assert set(docs) - set(RUN_BY) - set(NOT_RUN) == set(), "documented ros2 commands that no test runs"
    assert set(RUN_BY) | set(NOT_RUN) <= set(docs), "listed commands the docs no longer give"
    for command, test in RUN_BY.items():  # the test runs it, or a command it begins (`ros2 param set`)
        run = commands_run_by(test)
        assert any(f"{c} ".startswith(f"{command} ") for c in run), f"{test} does not run {command!r}: {run}"


def test_ros2_cli_the_command_finder_reads_code_blocks_continuations_and_code_spans():
    text = ("Run `ros2 run emotion_perception <node>` or\n`ros2 bag\nplay`; not `ros2`.\n\n"
            "    ros2 launch a b.py x:=1 \\\n        y:=2 &\n    export X=$(ros2 pkg prefix p)/share\n\n"
            "```sh\nros2 topic echo /e   # comment\npython -c 'ros2_ws'\n```\n")
    assert commands_in(text) == ["ros2 launch a b.py x:=1 y:=2", "ros2 pkg prefix p", "ros2 topic echo /e",
                                 "ros2 run emotion_perception <node>", "ros2 bag play"]


# --- the commands ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces_folder(tmp_path_factory) -> Path:
    """A folder of labelled images made from the astronaut photo (no research pixels)."""
    return make_dataset(tmp_path_factory.mktemp("faces") / "faces")


@pytest.fixture(scope="module")
def happy_folder(tmp_path_factory) -> Path:
    """45 frames of the smiling astronaut (3 s at 15 frames/s): whichever frame a busy node gets to shows the face,
    and the replay lasts longer than the discovery of a new subscriber."""
    import cv2

    folder = tmp_path_factory.mktemp("happy")
    for index in range(45):
        assert cv2.imwrite(str(folder / f"frame{index:02d}.jpg"), happy_frame(index % 16))
    return folder


@pytest.fixture
def probe(ros_context, request):
    probe = Probe(ros_context, "/", f"probe_{request.node.name[-30:].strip('_')}")
    yield probe
    probe.destroy()


def test_ros2_cli_launch_with_a_camera_topic_publishes_emotion_and_detail(processes, probe):
    """README: the launch on a camera topic, then `ros2 topic echo /emotion`; Ctrl-C ends it all cleanly."""
    early = processes.run(documented("ros2 topic echo /emotion --once"))
    assert early.returncode != 0 and "Could not determine the type" in early.stdout, early.stdout  # docs' warning
    prefix = processes.run(documented("ros2 pkg prefix emotion_perception")).stdout.strip()
    assert (Path(prefix) / "share/emotion_perception/config/fastdds_large_frames.xml").is_file(), prefix

    launch = processes.start(documented(f"{LAUNCH} image_topic:=/camera/image_raw"), "launch")
    launch.wait_for(r"landmark_emotion_node\]: active: listening on /camera/image_raw", 90)
    camera = probe.publisher(Image, CAMERA)
    emotions, details = probe.collect(String, "/emotion"), probe.collect(String, "/emotion/detail")
    echo = processes.start(documented("ros2 topic echo /emotion"), "echo")
    frame, stamp = happy_frame(), [100]

    def send() -> None:
        stamp[0] += 1
        camera.publish(image_msg(frame, stamp[0], frame_id="head_camera"))

    assert probe.spin_until(lambda: "data: happy" in echo.log(), 90, every=send), launch.log() + echo.log()
    echo.interrupt()
    assert "happy" in [m.data for m in emotions]
    detail = json.loads(details[-1].data)
    assert detail["frame_id"] == "head_camera" and detail["faces"][0]["label"] == "happy"
    assert_stops_cleanly(launch, {"landmark_emotion_node"})


def test_ros2_cli_launch_with_a_folder_source(processes, probe, happy_folder):
    """The launch with image_source_node on a folder (the test's replaces /data/faces): labels on /emotion, also
    for `ros2 topic echo` started after it (the source waits for the classifier); then docs/ros_overlay.md's
    lifecycle get, param set and node list, and hri_msgs is importable."""
    emotions = probe.collect(String, "/emotion")
    launch = processes.start(documented(f"{LAUNCH} use_source:=true source:=/data/faces rate:=15.0",
                                        {"/data/faces": str(happy_folder)}), "launch")
    echo = processes.run(documented("ros2 topic echo /emotion std_msgs/msg/String --once"), timeout=90)
    assert echo.returncode == 0 and "data: happy" in echo.stdout, echo.stdout + launch.log()
    assert probe.spin_until(lambda: "happy" in [m.data for m in emotions], 30), launch.log()
    launch.wait_for(r"image_source_node\]: source finished after 45 frames", 30)
    state, changed, nodes, hri = processes.together(
        lambda: processes.run_until(documented("ros2 lifecycle get /landmark_emotion_node"),
                                    lambda r: r.returncode == 0),
        lambda: processes.run_idempotent(documented("ros2 param set /landmark_emotion_node detect_every 5")),
        lambda: processes.run_until(documented("ros2 node list"), lambda r: "/image_source_node" in r.stdout),
        lambda: processes.run(["python", "-c", "from hri_msgs.msg import Expression; print(Expression.HAPPY)"]))
    assert state.stdout.startswith("active [3]"), state.stdout
    assert changed.stdout.strip() == "Set parameter successful", changed.stdout
    launch.wait_for(r"parameter detect_every = 5", 10)
    assert set(nodes.stdout.split()) >= {"/image_source_node", "/landmark_emotion_node"}, nodes.stdout
    assert hri.stdout.strip() == "happy", hri.stdout
    assert_stops_cleanly(launch, {"image_source_node", "landmark_emotion_node"})


def test_ros2_cli_lifecycle_and_parameters(processes):
    """autostart:=false, then `ros2 lifecycle set ... configure / activate`; `ros2 param set` accepts a value in
    range and refuses one out of range, with the reason."""
    launch = processes.start(documented(f"{LAUNCH} autostart:=false"), "launch")
    get = documented("ros2 lifecycle get /landmark_emotion_node")
    state = processes.run_until(get, lambda r: r.returncode == 0)
    assert state.stdout.startswith("unconfigured [1]"), state.stdout + launch.log()
    for command in (documented("ros2 lifecycle set /landmark_emotion_node configure"),
                    documented("ros2 lifecycle set /landmark_emotion_node activate")):
        result = processes.run(command)
        assert result.stdout.strip() == "Transitioning successful", result.stdout + launch.log()
    launch.wait_for(r"active: listening on /image", 10)
    ok, refused = processes.together(
        lambda: processes.run_idempotent(documented("ros2 param set /landmark_emotion_node detect_every 5")),
        lambda: processes.run_idempotent(documented("ros2 param set /landmark_emotion_node detect_every 500")))
    assert ok.stdout.strip() == "Set parameter successful", ok.stdout
    assert refused.stdout.startswith("Setting parameter failed: ") and "detect_every" in refused.stdout
    assert "out of range" in refused.stdout or "must be <=" in refused.stdout, refused.stdout
    assert_stops_cleanly(launch, {"landmark_emotion_node"})


@pytest.fixture(scope="module")
def faces_bag(faces_folder, tmp_path_factory) -> Path:
    """A rosbag2 of the faces folder at 4 frames/s, written by `emotion-perception bag from-dataset`."""
    import subprocess
    import sys

    bag = tmp_path_factory.mktemp("bags") / "faces_bag"
    made = subprocess.run([sys.executable, "-m", "emotion_perception", "bag", "from-dataset", str(faces_folder),
                           str(bag), "--fps", "4", "--quiet"], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    return bag


def test_ros2_cli_run_starts_each_node(processes, faces_folder, faces_bag):
    """The `ros2 run` lines start their nodes (the ResNet node on the CPU where there is no GPU) and stop on Ctrl-C
    with status 0; the camera source, with no camera here, refuses to start with status 2 and the reason."""
    runs = [
        (documented("ros2 run emotion_perception resnet_emotion_node --ros-args -p device:=cuda -r "
                    "image:=/camera/image_raw"), r"resnet_emotion_node\]: active: listening on /camera/image_raw"),
        (documented("ros2 run emotion_perception image_source_node --ros-args -p source:=/data/faces -p rate:=15.0 "
                    "-p loop:=true", {"/data/faces": str(faces_folder)}), r"publishing folder .* at 15\.0 frames/s"),
        (documented("ros2 run emotion_perception image_source_node --ros-args -p source_type:=bag -p "
                    "source:=run1.mcap -p rate_factor:=2.0", {"run1.mcap": str(next(faces_bag.glob("*.mcap")))}),
         r"publishing bag"),
        (documented("ros2 run emotion_perception adversarial_injector_node --ros-args -p attack:=fgsm -p "
                    "epsilon:=0.01 -r image:=/camera/image_raw -r image_attacked:=/emotion_input"),
         r"attack fgsm: /camera/image_raw -> /emotion_input"),
        (documented("ros2 run emotion_perception <node>", {"<node>": "scorer_node"}), r"scoring emotion/detail"),
    ]
    camera = processes.run(documented("ros2 run emotion_perception image_source_node --ros-args -p "
                                      "source_type:=camera -p source:=/dev/video0"))
    assert camera.returncode == 2 and "cannot open the source: camera /dev/video0" in camera.stdout, camera.stdout
    started = [(processes.start(words, f"run{i}"), ready) for i, (words, ready) in enumerate(runs)]
    for process, ready in started:
        process.wait_for(ready, 120)
    assert "falls back to the CPU" in started[0][0].log() or "cpu" in started[0][0].log()
    for process, _ in started:
        assert process.interrupt() == 0, process.log()
        assert TRACEBACK not in process.log(), process.log()


def test_ros2_cli_launch_examples_start_their_nodes(processes, probe):
    """The other launch examples of docs/nodes.md and docs/bags.md, started together, bring up the nodes they name,
    wired as they say (the namespaced one also answers a frame with a debug image), and stop cleanly."""
    examples = [
        (documented(f"{LAUNCH} use_resnet:=true attack:=fgsm epsilon:=0.01"),
         {"adversarial_injector_node": "attack fgsm: /image -> /image_attacked",
          "landmark_emotion_node": "active: listening on /image_attacked",
          "resnet_emotion_node": "active: listening on /image_attacked"}),
        (documented(f"{LAUNCH} attack:=eye_boxes attack_fraction:=0.5 box_fill:=mean"),
         {"adversarial_injector_node": "attack eye_boxes: /image -> /image_attacked",
          "landmark_emotion_node": "active: listening on /image_attacked"}),
        (documented(f"{LAUNCH} image_topic:=/camera/image_raw use_sim_time:=true"),
         {"landmark_emotion_node": "active: listening on /camera/image_raw"}),
        (documented(f"{LAUNCH} namespace:=robot1 publish_debug_image:=true"),
         {"landmark_emotion_node": "active: listening on /robot1/image"}),
    ]
    launches = [processes.start(words, f"launch{i}") for i, (words, _) in enumerate(examples)]  # all at once
    for launch, (words, ready) in zip(launches, examples):
        for node, line in ready.items():
            launch.wait_for(rf"{node}\]: {line}", 150)
        if "namespace:=robot1" in words:
            answers_a_frame_with_a_debug_image(probe, "/robot1", launch)
    for launch, (_, ready) in zip(launches, examples):
        assert_stops_cleanly(launch, set(ready))


def answers_a_frame_with_a_debug_image(probe: Probe, namespace: str, launch) -> None:
    debug = probe.collect(Image, f"{namespace}/emotion/debug_image")
    frames = probe.publisher(Image, f"{namespace}/image")
    assert probe.spin_until(lambda: debug, 60, every=lambda: frames.publish(image_msg(happy_frame(), 7))), launch.log()
    assert debug[0].header.stamp.sec == 7 and debug[0].encoding == "bgr8"


def test_ros2_cli_whole_replay_experiment_from_the_launch_file(processes, faces_bag, tmp_path):
    """bag -> image_source_node -> jaw box injector -> landmark and ResNet nodes -> scorer, from one launch line,
    ending with the scorer's report (report.md, results.json) for both models."""
    report = tmp_path / "live"
    launch = processes.start(documented(
        f"{LAUNCH} use_source:=true source_type:=bag source:=runs/jaffe_bag loop:=false use_resnet:=true "
        "attack:=jaw_box use_scorer:=true report_dir:=runs/jaffe_live detect_every:=1 detect_tiles:=1",
        {"runs/jaffe_bag": str(faces_bag), "runs/jaffe_live": str(report)}), "launch")
    launch.wait_for(r"scorer_node\]: report written to", 180)
    results = json.loads((report / "results.json").read_text())
    models = results["models"]
    assert set(models) == {"emotion/detail", "emotion_resnet/detail"}, models.keys()
    for topic, figures in models.items():
        assert figures["answered"] + figures["dropped"] == 8, (topic, figures)
    assert models["emotion/detail"]["answered"] > 0, launch.log()
    assert "jaw" in (report / "report.md").read_text() or (report / "report.md").stat().st_size > 0
    assert_stops_cleanly(launch, {"image_source_node", "adversarial_injector_node", "landmark_emotion_node",
                                  "resnet_emotion_node", "scorer_node"})
