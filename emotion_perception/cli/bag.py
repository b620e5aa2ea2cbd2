"""`emotion-perception bag from-dataset DIR OUT` and `emotion-perception bag evaluate BAG --out DIR`."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

from emotion_perception.cli.common import add_executor_args, executor_settings, output_folder
from emotion_perception.core.errors import CommandError
from emotion_perception.data.bags import (
    ENCODINGS,
    GROUND_TRUTH_TOPIC,
    IMAGE_TOPIC,
    STORAGES,
    BagReader,
    write_dataset_bag,
)
from emotion_perception.experiments.scoring import check_output_folder, replace_folder, write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bag", help="ROS 2 bags: write one from a dataset, evaluate a model on one")
    commands = parser.add_subparsers(dest="bag_command", required=True, metavar="BAG_COMMAND")

    write = commands.add_parser("from-dataset", help="a rosbag2 (version 9) of a dataset's images and labels")
    write.add_argument("data", metavar="DIR", help="dataset folder (<class>/<image> or manifest.csv)")
    write.add_argument("out", metavar="OUT", type=output_folder, help="bag folder to create (must not exist)")
    write.add_argument("--fps", type=float, default=30.0, help="frame rate of the bag's timeline (default 30)")
    write.add_argument("--storage", choices=STORAGES, default="mcap", help="storage plugin (default mcap)")
    write.add_argument("--encoding", choices=ENCODINGS, default="auto",
                       help="image encoding; auto: mono8 for grey images, bgr8 for colour (default)")
    write.add_argument("--no-upscale", action="store_true",
                       help="keep small face crops (< 100 px) at their size; by default they are enlarged by "
                       "the face detector's integer factor so that the camera-frame detector finds the face")
    write.add_argument("--start", type=float, default=1_700_000_000.0,
                       help="stamp of the first frame, seconds since the epoch (default 1700000000)")
    write.add_argument("--quiet", action="store_true", help="no progress bar")
    write.set_defaults(func=run_from_dataset)

    evaluate = commands.add_parser("evaluate", help="the landmark pipeline over a bag's frames -> report + "
                                   "results bag")
    evaluate.add_argument("bag", metavar="BAG", nargs="+", help="one or more bags (several: one task each, run on "
                          "--jobs processes or a --cluster whose workers read the bags at the same paths)")
    evaluate.add_argument("--out", required=True, metavar="DIR", type=output_folder,
                          help="report folder (report.md, results.json, results_bag/); new, empty or an "
                          "earlier report. With several bags, DIR/<bag folder name>/ for each")
    evaluate.add_argument("--model", default="forest", metavar="forest|cnn|PATH",
                          help="forest (the shipped landmark forest, default), cnn (the shipped small ResNet, "
                          "resnet_emotion_node's step), or a .npz forest / .pt CNN file")
    evaluate.add_argument("--landmark-model", default=None, help="dlib 68-point .dat file (default: shipped)")
    evaluate.add_argument("--topic", default=IMAGE_TOPIC, help=f"image topic (default {IMAGE_TOPIC})")
    evaluate.add_argument("--attack", default="none", help="attack applied to every frame before "
                          "classification, as adversarial_injector_node does (default none)")
    evaluate.add_argument("--epsilon", type=float, default=0.01, help="fgsm/pgd L-inf bound on [0,1] pixels")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the attacks' random parts")
    evaluate.add_argument("--attack-param", action="append", default=[], metavar="NAME=VALUE",
                          help="any other adversarial_injector_node parameter, e.g. target_image=face.png (needed "
                          "by scaling), steps=20, box_fill=mean; repeat for several")
    evaluate.add_argument("--no-tamper-check", action="store_true",
                          help="leave out the tamper check of each face (the nodes' check_tampering:=false)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    add_executor_args(evaluate)
    evaluate.set_defaults(func=run_evaluate)


def run_from_dataset(args: argparse.Namespace) -> int:
    with tqdm(desc="frames", unit="frame", disable=args.quiet) as bar:
        summary = write_dataset_bag(args.data, args.out, args.fps, args.storage,
                                    start_ns=round(args.start * 1e9), encoding=args.encoding,
                                    upscale=not args.no_upscale, progress=lambda n: bar.update(1))
    for reason in summary.skipped:
        print(f"emotion-perception bag from-dataset: {reason}")
    print(f"{args.out}: {summary.frames} frames on {IMAGE_TOPIC} ({summary.labelled} labelled, "
          f"{summary.upscaled} small crops upscaled, {len(summary.skipped)} skipped), {args.fps:g} fps, "
          f"{args.storage}")
    return 0


def attack_params(pairs: list[str]) -> dict[str, object]:
    """NAME=VALUE texts -> injector parameter values of the types its specs declare; CommandError if bad."""
    from emotion_perception.attacks.injector import ATTACKER_PARAMS
    from emotion_perception.core.params import specs_by_name, validate

    specs, values = specs_by_name(ATTACKER_PARAMS), {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in specs or name in ("attack", "epsilon", "seed"):
            raise CommandError(f"--attack-param {pair!r}: expected NAME=VALUE with NAME one of "
                               f"{', '.join(n for n in specs if n not in ('attack', 'epsilon', 'seed'))}")
        kind = specs[name].kind
        try:
            values[name] = text.lower() == "true" if kind is bool else kind(text)
        except ValueError:
            raise CommandError(f"--attack-param {pair!r}: {name} must be a {kind.__name__}") from None
    problems = validate(ATTACKER_PARAMS, values)
    if problems:
        raise CommandError("; ".join(problems))
    return values


def run_evaluate(args: argparse.Namespace) -> int:
    from emotion_perception.attacks.registry import NAMES as ATTACKS
    from emotion_perception.experiments.bag_evaluation import (
        AttackSettings,
        BagWork,
        FrameClassifier,
        evaluate_bag_task,
    )
    from emotion_perception.experiments.executor import InProcess, Task
    from emotion_perception.models.shipped import load_classifier
    from emotion_perception.models.tamper import TamperCheck

    if args.attack != "none" and args.attack not in ATTACKS:
        raise CommandError(f"unknown attack {args.attack!r}; choose from none, {', '.join(ATTACKS)}")
    if not 0.0 <= args.epsilon <= 1.0:
        raise CommandError(f"--epsilon must be in [0, 1], got {args.epsilon}")
    executor = executor_settings(args)
    outs = report_folders(args.bag, Path(args.out))
    params = attack_params(args.attack_param)
    for bag in args.bag:
        with BagReader(bag, args.topic) as reader:  # check every bag before loading anything else
            if reader.truth_connection is None:
                raise CommandError(f"{bag}: no {GROUND_TRUTH_TOPIC} topic, nothing to score against")
    tamper = None if args.no_tamper_check else TamperCheck.load()
    work = BagWork(FrameClassifier(load_classifier(args.model), args.landmark_model, tamper=tamper),
                   AttackSettings(args.attack, args.epsilon, args.seed, params), args.topic)
    tasks = [Task(f"bag{k}", bag) for k, bag in enumerate(args.bag)]
    failed = []
    try:
        with executor.make(1, len(tasks)) as pool, tqdm(total=len(tasks), desc=f"bags ({pool.workers} worker"
                                                        f"{'s' if pool.workers > 1 else ''})", unit="bag",
                                                        disable=args.quiet or len(tasks) == 1) as bar:
            work.frame_bars = isinstance(pool, InProcess) and not args.quiet
            for outcome in pool.run(evaluate_bag_task, work, tasks):
                bar.update()
                out = outs[outcome.task.args]
                if outcome.error is not None:
                    failed.append(outcome.task.args)
                    print(f"{outcome.task.args}: failed, its worker was lost each time ({outcome.error})",
                          file=sys.stderr)
                    continue
                write_bag_report(out, *outcome.value)
                print_bag_line(out, outcome.value[0])
    except ValueError as error:
        raise CommandError(str(error)) from None
    if failed:
        print(f"emotion-perception bag evaluate: {len(failed)} bag(s) failed; run the same command again for them",
              file=sys.stderr)
        return 1
    return 0


def report_folders(bags: list[str], out: Path) -> dict[str, Path]:
    """Each bag's report folder: `out` for one bag, out/<bag folder name> for several; each checked before any
    work (new, empty or an earlier report)."""
    if len(bags) == 1:
        outs = {bags[0]: out}
    else:
        names = [Path(bag).name for bag in bags]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise CommandError(f"bags with the same folder name ({', '.join(repeated)}): their reports would collide")
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out}: exists and is not a folder")
        outs = {bag: out / name for bag, name in zip(bags, names)}
    for folder in outs.values():
        try:
            check_output_folder(folder)
        except ValueError as error:
            raise CommandError(str(error)) from None
    return outs


def write_bag_report(out: Path, run: Any, files: dict[str, bytes]) -> None:
    """report.md, results.json and the results bag, staged beside `out` and moved there whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    stage.chmod(0o755)
    try:
        for name, data in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_bytes(data)
        write_report(stage, run.results)
        replace_folder(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def print_bag_line(out: Path, run: Any) -> None:
    r = run.results
    accuracy = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
    print(f"{out}: accuracy {accuracy} over {r['n']} answered labelled frames of {r['ground_truth_frames']} "
          f"({r['n_no_face'] or 0} without a face, {run.bad_frames} bad frames); {run.frames} frames in "
          f"{run.seconds:.1f} s ({run.frames / max(run.seconds, 1e-9):.1f} frames/s)")
