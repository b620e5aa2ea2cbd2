"""`emotion-perception calibrate`: give a model file the temperature fitted on held-out predictions (the
`temperature` of `evaluate --protocol leave-dataset-out --json`), so that its scores mean what they say."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emotion_perception.cli.common import output_file
from emotion_perception.core.errors import CommandError
from emotion_perception.models.shipped import load_classifier, model_kind


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calibrate", help="set a model's calibration temperature (from a "
                                   "leave-dataset-out evaluation)")
    parser.add_argument("--model", required=True, help="forest, cnn (the shipped ones) or a .npz / .pt file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--temperature-from", metavar="EVALUATION.json",
                        help="the JSON of `evaluate --protocol leave-dataset-out` for this model's recipe")
    source.add_argument("--temperature", type=float, help="a temperature given directly")
    parser.add_argument("--out", required=True, type=output_file,
                        help="the calibrated model file (.npz forest, .pt CNN)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kind = model_kind(args.model)
    suffix = ".pt" if kind == "cnn" else ".npz"
    if not args.out.endswith(suffix):
        raise CommandError(f"--out must end in {suffix} for a {kind} model, got {args.out}")
    calibration = {"method": "temperature scaling: probabilities ** (1 / T), renormalised"}
    if args.temperature_from:
        try:
            evaluation = json.loads(Path(args.temperature_from).read_text())
            temperature = float(evaluation["temperature"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CommandError(f"--temperature-from {args.temperature_from}: no temperature in it ({error})") from None
        calibration.update(fitted_on=f"leave-one-dataset-out predictions ({args.temperature_from})",
                           data=evaluation.get("data"), ece_before=evaluation.get("ece_pooled"),
                           ece_after=evaluation.get("ece_pooled_calibrated"))
    else:
        temperature = float(args.temperature)
        calibration["fitted_on"] = "given on the command line"
    if not 0.05 <= temperature <= 20:
        raise CommandError(f"temperature must be in [0.05, 20], got {temperature}")
    model = load_classifier(args.model)
    model.header.update(temperature=temperature, calibration=calibration)
    if kind == "cnn":
        from emotion_perception.models.cnn import save_cnn

        save_cnn(args.out, model.model, model.header)
    else:
        model.save(args.out)
    print(f"saved {args.out}: {model.name} with temperature {temperature:.3f}")
    return 0
