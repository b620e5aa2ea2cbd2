"""`emotion-perception flicker`: how often the label flips while a person holds an expression, with and without
the nodes' score smoothing, on a replayed sequence made from a labelled folder (see `experiments.flicker`)."""

from __future__ import annotations

import argparse

from emotion_perception.cli.common import output_file, write_json
from emotion_perception.cli.trials import numbers
from emotion_perception.core.errors import CommandError
from emotion_perception.data.datasets import load_datasets
from emotion_perception.experiments.flicker import replay, steadiness
from emotion_perception.models.shipped import load_classifier


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("flicker", help="label flips per minute on a replayed sequence, by smoothing "
                                   "time constant")
    parser.add_argument("--data", action="append", required=True, metavar="DIR[:LABELS][@SPLIT]",
                        help="labelled folder: each image is held in front of the camera in turn")
    parser.add_argument("--model", default="forest", help="forest, cnn or a model file")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds each image is held (default 3)")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    parser.add_argument("--smoothing", type=numbers, default=(0.0, 0.25, 0.5, 1.0, 2.0),
                        help="time constants to compare, seconds (default 0,0.25,0.5,1,2)")
    parser.add_argument("--hysteresis", type=numbers, default=(0.0, 0.1),
                        help="label hysteresis values to compare (default 0,0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, metavar="OUT", type=output_file, help="write the figures as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.hold <= 0 or args.fps <= 0 or any(t < 0 for t in args.smoothing) or any(
            not 0 <= h < 1 for h in args.hysteresis):
        raise CommandError("--hold, --fps must be > 0, --smoothing values >= 0, --hysteresis values in [0, 1)")
    dataset = load_datasets(args.data)
    run_ = replay(dataset, load_classifier(args.model), args.hold, args.fps, args.seed)
    rows = [steadiness(run_, t, h) for h in args.hysteresis for t in args.smoothing]
    print(f"{len(run_.times)} frames ({len(dataset)} held images x {args.hold:g} s at {args.fps:g} fps), "
          f"model {args.model}")
    print(f"{'hysteresis':>11}{'time constant s':>16}{'flips/min':>11}{'accuracy':>10}{'delay s':>9}")
    for row in rows:
        delay = "-" if row["median_delay_s"] is None else f"{row['median_delay_s']:.2f}"
        print(f"{row['hysteresis']:>11g}{row['time_constant']:>16g}{row['flips_per_minute']:>11.1f}"
              f"{row['accuracy']:>10.3f}{delay:>9}")
    if args.json:
        write_json(args.json, {"data": args.data, "model": args.model, "hold_s": args.hold, "fps": args.fps,
                               "frames": len(run_.times), "results": rows})
    return 0
