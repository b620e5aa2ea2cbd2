"""The CNN side of the CLI: `train cnn`, the CNN options of `evaluate`, the device line and the CNN bench.

The `train`, `evaluate`, `predict` and `bench` modules call these functions; nothing here registers itself.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from emotion_perception.cli.common import (
    add_analyzer_args,
    add_balance_arg,
    add_data_args,
    add_screen_args,
    make_analyzer,
    make_cache,
    output_file,
    output_folder,
    screening_of,
)
from emotion_perception.core.errors import CommandError
from emotion_perception.data.datasets import dataset_names, load_datasets
from emotion_perception.data.face_data import extract_crops, with_landmarks
from emotion_perception.models.cnn import ARCHS, INPUT_SIZES, resolve_device, save_cnn
from emotion_perception.models.cnn_training import SCHEDULES, TrainSettings, train_cnn

DEFAULTS = TrainSettings()  # the shipped recipe: the options' defaults


def add_cnn_args(parser: argparse.ArgumentParser) -> None:
    """CNN training options shared by `train cnn` and `evaluate --model-kind cnn` (no --seed, no --quiet); their
    defaults are the shipped recipe (`TrainSettings`)."""
    d = DEFAULTS
    parser.add_argument("--arch", default=d.arch, choices=ARCHS, help=f"CNN architecture (default {d.arch})")
    parser.add_argument("--input-size", type=int, default=d.input_size, choices=INPUT_SIZES, help="crop side, px")
    parser.add_argument("--crop", default=d.crop, choices=("aligned", "box"),
                        help=f"aligned on the eyes (from the landmarks) or a box around the detector's face box "
                        f"(default {d.crop})")
    parser.add_argument("--margin", type=float, default=d.margin, help="box crops: margin around the face box")
    parser.add_argument("--global-normalisation", action="store_true",
                        help="normalise with the training set's mean and std instead of each crop's own")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"epoch budget (default {d.epochs})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=None, help="initial LR (default 0.05 SGD; 1e-3 Nadam for dcnn)")
    parser.add_argument("--schedule", default=d.schedule, choices=SCHEDULES,
                        help="cosine (one warm-up epoch) or the paper's LR steps")
    parser.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction,
                        help="subjects held out of training to pick the best epoch (0: keep the last)")
    parser.add_argument("--patience", type=int, default=d.patience, help="dcnn early-stopping patience (epochs)")
    parser.add_argument("--no-augment", action="store_true", help="no augmentation at all")
    parser.add_argument("--no-camera-augment", action="store_true", help="no light, noise, blur or JPEG changes")
    parser.add_argument("--occlusion", type=float, default=d.occlusion,
                        help=f"probability that a training crop gets an occluder (default {d.occlusion})")
    parser.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's; evaluate: 1 per process for the CNN, the "
                        "cores shared by the --jobs processes for the forest)")


def add_cnn_train_parser(train_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `train cnn` to the `train` command's sub-parsers."""
    parser = train_subparsers.add_parser("cnn", help="emotion CNN on dlib face crops (resnet_wide, small_resnet, ...)")
    add_data_args(parser)
    add_analyzer_args(parser)
    add_cnn_args(parser)
    add_balance_arg(parser)
    add_screen_args(parser, repairs=False)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="model name stored in the file")
    parser.add_argument("--checkpoints", default=None, metavar="DIR", type=output_folder,
                        help="save the training's state after every epoch here, and resume from it")
    parser.add_argument("--out", required=True, type=output_file, help="output weight file (.pt)")
    parser.set_defaults(func=run_train_cnn)
    return parser


def cnn_settings(args: argparse.Namespace) -> TrainSettings:
    """TrainSettings from the parsed options; bad values -> CommandError."""
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    settings = TrainSettings(
        arch=args.arch, input_size=args.input_size, crop=args.crop, margin=args.margin,
        per_crop=not args.global_normalisation, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        schedule=args.schedule, label_smoothing=args.label_smoothing, balance=args.balance or DEFAULTS.balance,
        augment=not args.no_augment, camera_augment=not args.no_camera_augment, occlusion=args.occlusion,
        patience=args.patience, val_fraction=args.val_fraction, seed=args.seed, device=args.device,
        progress=not args.quiet,
    )
    try:
        settings.check()
    except ValueError as error:
        raise CommandError(str(error)) from None
    if not 0 <= args.margin <= 1:
        raise CommandError(f"--margin must be in [0, 1], got {args.margin}")
    return settings


def run_train_cnn(args: argparse.Namespace) -> int:
    if not args.out.endswith(".pt"):
        raise CommandError(f"--out must end in .pt, got {args.out}")
    settings = cnn_settings(args)
    dataset = load_datasets(args.data)
    analyzer, cache = make_analyzer(args), make_cache(args)
    data = extract_crops(dataset, analyzer, settings.crop_spec, cache, settings.progress)
    left_out = np.zeros(len(dataset), bool)
    if args.screen:  # the check reads the faces' landmarks in image coordinates (cached)
        _, left_out = screening_of(args, with_landmarks(dataset, analyzer, cache, settings.progress), repairs=False)
    found = data.found & ~left_out
    if not found.any():
        raise CommandError("no face found in any training image")
    labels = dataset.labels.astype(str)
    classes, counts = np.unique(labels[found], return_counts=True)
    header = {
        "name": args.name or f"cnn-{settings.arch}-{settings.input_size}",
        "recipe": args.command_line,
        "data": args.data, "train_counts": dict(zip(classes.tolist(), counts.tolist())),
        "faces_not_found": int((~data.found).sum()), "screened_out": int(left_out.sum()),
    }
    result = train_cnn(data.crops[found], labels[found], settings, None, dataset.groups()[found],
                       data.landmarks[found], header, dataset_names(dataset)[found], args.checkpoints)
    save_cnn(args.out, result.classifier.model, result.classifier.header)
    last = result.history[result.best_epoch - 1]
    val = f", validation accuracy {last['val_accuracy']:.4f}" if "val_accuracy" in last else ""
    print(f"saved {args.out}: {settings.arch} {settings.input_size}px, best epoch {result.best_epoch}/"
          f"{len(result.history)}{val}, {int(found.sum())} faces, {result.seconds:.0f} s on "
          f"{result.classifier.header['device']}")
    return 0


def resolve_device_line(device: str) -> str:
    """The torch device for `auto|cpu|cuda`; a missing GPU is said in one line on stderr and the CPU is used."""
    used, warning = resolve_device(device)
    if warning:
        print(f"note: {warning}", file=sys.stderr)
    return used
