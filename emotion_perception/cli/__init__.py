"""`emotion-perception` command line: argument parsing and printing only, one sub-command per module of this
package (each defines `register(subparsers)`, which adds its sub-command(s) with `func=run(args) -> int`)."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence

from emotion_perception.core.errors import EmotionPerceptionError

# Each module defines `register(subparsers)`, which adds its sub-command(s) with `func=run(args) -> int`.
COMMAND_MODULES = (
    "predict",
    "extract",
    "train",
    "evaluate",
    "attack",
    "demo",
    "bench",
    "bag",
    "explain",
    "trials",
    "calibrate",
    "flicker",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-perception",
        description="Facial emotion perception: landmark RandomForest and ResNet models, robustness trials.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"emotion_perception.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"] and (len(argv) == 1 or argv[1].startswith("-")) and "-h" not in argv:
        argv.insert(1, "forest")  # `train --data ...` trains the default kind
    args = build_parser().parse_args(argv)
    args.command_line = " ".join(["emotion-perception", *map(shlex.quote, argv)])  # the recipe models record
    try:
        return int(args.func(args) or 0)
    except EmotionPerceptionError as error:
        print(f"emotion-perception {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emotion-perception {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
