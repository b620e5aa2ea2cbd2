"""`emotion-perception bench`: frames/s and latency of the landmark path on one core, naive vs optimised, and the
CNN path (see `experiments.bench`); prints a table and writes the figures as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from emotion_perception.cli.cnn_commands import resolve_device_line
from emotion_perception.cli.common import output_file, write_json
from emotion_perception.core.errors import CommandError
from emotion_perception.core.params import FRAME_STEP_PARAMS, defaults, validate
from emotion_perception.experiments.bench import HEIGHT, WIDTH, BenchSettings, run_bench


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="frames/s and latency, naive vs optimised, one core")
    parser.add_argument("--frames", type=int, default=300, help="frames per pipeline (default 300)")
    parser.add_argument("--json", type=output_file, default=None, metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--face-scale", type=float, default=2.0,
                        help="size of the face relative to the astronaut photo's (~90 px); default 2.0 (~180 px)")
    node = defaults(FRAME_STEP_PARAMS)  # "optimised" is landmark_emotion_node at its defaults unless told
    parser.add_argument("--detect-every", type=int, default=node["detect_every"],
                        help="optimised: detection sweep every N frames (default: the node's)")
    parser.add_argument("--detect-scale", type=float, default=node["detect_scale"],
                        help="optimised: detector image scale (default: the node's)")
    parser.add_argument("--detect-tiles", type=int, default=node["detect_tiles"],
                        help="optimised: strips per detection sweep, one per frame (default: the node's)")
    parser.add_argument("--track-every", type=int, default=node["track_every"],
                        help="optimised: correlation tracker every N frames, landmarks carry the box between "
                        "(default: the node's)")
    parser.add_argument("--model", default=None, help="forest model (.npz); default: the shipped model")
    parser.add_argument("--cnn-model", default=None, help="CNN weights (.pt); default: the shipped small ResNet")
    parser.add_argument("--cnn-device", default="cpu", choices=("auto", "cpu", "cuda"),
                        help="where the CNN figures are measured (default cpu; one thread there)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.frames < 10:
        raise CommandError("--frames must be at least 10")
    problems = validate(FRAME_STEP_PARAMS, {"detect_every": args.detect_every, "detect_scale": args.detect_scale,
                                            "detect_tiles": args.detect_tiles, "track_every": args.track_every})
    if problems:
        raise CommandError("; ".join(problems))
    settings = BenchSettings(args.frames, args.face_scale, args.detect_every, args.detect_scale, args.detect_tiles,
                             args.track_every, args.model, args.cnn_model, resolve_device_line(args.cnn_device))
    try:
        results = run_bench(settings)
    except ValueError as error:
        raise CommandError(str(error)) from None
    print_table(results)
    if args.json:
        write_json(args.json, results)
    return 0


def print_table(r: dict[str, Any]) -> None:
    print(f"emotion-perception bench: {r['frames']} frames {WIDTH}x{HEIGHT}, one face (~{r['face_px']} px), "
          f"{r['cpu']}; load average {r['loadavg_1min_before']:.2f} -> {r['loadavg_1min_after']:.2f} "
          f"on {r['cpu_count']} CPUs")
    print(f"{'pipeline':<44}{'fps':>8}{'p50 ms':>9}{'p99 ms':>9}{'face %':>8}")
    rows = (
        ("naive (detect every frame + sklearn)", "naive", "_naive"),
        (f"optimised (detect 1/{r['detect_every']} x{r['detect_scale']} in {r['detect_tiles']}+1, "
         f"track 1/{r['track_every']})",
         "optimised", ""),
    )
    for title, key, suffix in rows:
        print(f"{title:<44}{r['fps_' + key]:>8.1f}{r['latency_ms_p50' + suffix]:>9.2f}"
              f"{r['latency_ms_p99' + suffix]:>9.2f}{100 * r['face_rate_' + key]:>8.1f}")
    print(f"forest per face ({r['model']}, face + mirror rows): scikit-learn {r['sklearn_forest_ms_p50']:.3f} ms, "
          f"flat {r['forest_ms_p50']:.3f} ms (x{r['speedup_forest']:.1f}); features {r['features_ms_p50']:.3f} ms, "
          f"whole classification {r['classify_ms_p50']:.3f} ms ({r['classify_checked_ms_p50']:.3f} ms after the "
          "tamper check)")
    print(f"speed-up optimised / naive: x{r['speedup_fps']:.2f}")
    print(f"CNN ({r['cnn_arch']} {r['cnn_input_size']}px on {r['cnn_device']}, {r['cnn_threads']} thread(s)): "
          f"batch 1 {r['cnn_ms_p50']:.2f} ms per face (p90 {r['cnn_ms_p90']:.2f}), batch 64 "
          f"{r['cnn_faces_per_s_batch64']:.0f} faces/s")
    print(f"tamper check per face: {r['tamper_ms_p50']:.3f} ms, of which the visibility estimate "
          f"{r['visibility_ms_p50']:.3f} ms")
    if r.get("rule_ms_p50") is not None:
        print(f"explanation rule per face (named measurements + fired rule): {r['rule_ms_p50']:.3f} ms, "
              f"of which the rule itself {r['rule_only_ms_p50']:.4f} ms")


