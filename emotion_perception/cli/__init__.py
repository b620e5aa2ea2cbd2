"""`emotion-perception` command line: argument parsing and printing only, one sub-command per module of this
package (each defines `register(subparsers)`, which adds its sub-command(s) with `func=run(args) -> int`).

Every error in the input, usage errors included, ends a command with one line on stderr and exit status 2.
Ctrl-C (SIGINT) and SIGTERM, at any moment, end it with one line and status 130 or 143, after the same clean-up
as an error (no half-written output is left: `core.atomic`)."""

from __future__ import annotations

import argparse
import importlib
import shlex
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from emotion_perception.core.errors import EmotionPerceptionError, Terminated

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


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and sub-parsers) whose usage errors are one line on stderr, with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="emotion-perception",
        description="Facial emotion perception: landmark RandomForest and ResNet models, robustness trials.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"emotion_perception.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    name, program = "emotion-perception", argv is None
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if argv[:1] == ["train"] and (len(argv) == 1 or argv[1].startswith("-")) and "-h" not in argv:
            argv.insert(1, "forest")  # `train --data ...` trains the default kind
        args = build_parser().parse_args(argv)
        args.command_line = " ".join(["emotion-perception", *map(shlex.quote, argv)])  # the recipe models record
        name = f"{name} {args.command}"
        return int(args.func(args) or 0)
    except EmotionPerceptionError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"{name}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if program:  # the command is over: a signal now ends the process as by default, without raising into
            # Python's shutdown (joblib's exit handler joining its threads printed a KeyboardInterrupt traceback)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
