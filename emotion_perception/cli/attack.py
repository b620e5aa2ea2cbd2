"""`emotion-perception attack`: attacked copies of a dataset folder (same relative paths), `attack.json` with the
parameters and the measured size of every change, and `examples.png` (original | attacked | difference)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from emotion_perception import attacks
from emotion_perception.attacks import registry
from emotion_perception.cli.common import add_analyzer_args, make_analyzer, make_cache, output_folder, write_json
from emotion_perception.core.errors import CommandError
from emotion_perception.core.images import read_gray
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.core.types import Face
from emotion_perception.data.datasets import FaceDataset, load_folder
from emotion_perception.data.landmark_cache import extract_dataset
from emotion_perception.models.crops import CropSpec

PANEL = 160  # side of one image in examples.png


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attack", help="write attacked copies of a dataset folder and a PNG grid of examples",
        description="Attacked copies of every image of --data under --out (same relative paths, grey), "
        "attack.json (parameters, per-image change sizes) and examples.png.",
    )
    parser.add_argument("--attack", required=True, metavar="{" + ",".join(registry.NAMES) + "}",
                        help="which attack")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder (<class>/<image>)")
    parser.add_argument("--out", required=True, metavar="DIR", type=output_folder,
                        help="output folder (not inside --data)")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="fgsm/pgd: L-inf bound on [0,1] pixels (default 0.01); gaussian: sigma (0.05); "
                        "salt_pepper: fraction of pixels (0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=float, default=None,
                        help=f"box growth in units of the eye (jaw) width (default {attacks.EYE_MARGIN} eyes, "
                        f"{attacks.JAW_MARGIN} jaw)")
    parser.add_argument("--fill", default="black", choices=attacks.FILLS, help="box colour")
    parser.add_argument("--steps", type=int, default=10, help="pgd iterations")
    parser.add_argument("--step-size", type=float, default=None, help="pgd step (default 2.5*epsilon/steps)")
    parser.add_argument("--no-random-start", action="store_true", help="pgd starts at the clean image")
    parser.add_argument("--model", default=None, help="CNN weights for fgsm/pgd (default: the shipped CNN)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for fgsm/pgd")
    parser.add_argument("--target", default=None, metavar="IMAGE",
                        help="scaling: the image the victim should see (default: an image of another class)")
    parser.add_argument("--scale-size", type=int, default=None,
                        help="scaling: the victim's square resize side (default 48, or a quarter of smaller images)")
    parser.add_argument("--interpolation", default="linear", choices=sorted(attacks.INTERPOLATIONS),
                        help="scaling: the victim's cv2.resize interpolation")
    parser.add_argument("--only-class", default=None, metavar="LABEL",
                        help="attack only this class, copy the others (with eye_boxes: Type A poisoning)")
    parser.add_argument("--examples", type=int, default=4, help="rows of examples.png")
    add_analyzer_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = check_params(args)
    data, out = Path(args.data).resolve(), Path(args.out).resolve()
    if out == data or data in out.parents:
        raise CommandError(f"--out {args.out} must lie outside --data {args.data}")
    dataset = load_folder(data)
    if args.only_class is not None and args.only_class not in set(dataset.labels):
        raise CommandError(f"--only-class {args.only_class}: no image of {args.data} has that label")
    attacker = Attacker(args, params, dataset)
    chosen = np.ones(len(dataset), bool) if args.only_class is None else dataset.labels == args.only_class
    records: list[dict[str, Any]] = []
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    wanted = set(np.linspace(0, max(int(chosen.sum()) - 1, 0), args.examples).round().astype(int).tolist()) \
        if args.examples > 0 else set()
    rank = 0
    for i, path in enumerate(tqdm(dataset.paths, desc=f"attack {args.attack}", disable=args.quiet)):
        relative = path.relative_to(dataset.root)
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {"path": str(relative), "label": str(dataset.labels[i]), "applied": False}
        if not chosen[i]:
            shutil.copyfile(path, target)
            records.append(record)
            continue
        gray = read_gray(path)
        attacked, extra = attacker.attack(i, gray)
        if attacked is None:
            shutil.copyfile(path, target)
            record["reason"] = extra.get("reason", "not applied")
        else:
            write_image(target, attacked)
            written = read_gray(target)  # sizes are measured on what lies on disk (JPEG loses detail)
            measured, view = attacker.measure(gray, written)
            record.update(applied=True, **attacks.change_size(gray, written), **measured, **extra)
            if rank in wanted:
                examples.append((gray, written, view))
            rank += 1
        records.append(record)
    if (dataset.root / "manifest.csv").is_file():
        shutil.copyfile(dataset.root / "manifest.csv", out / "manifest.csv")
    write_json(out / "attack.json", summary(args, params, records))
    if examples:
        cv2.imwrite(str(out / "examples.png"), example_grid(examples))
    else:
        cv2.imwrite(str(out / "examples.png"), title_bar(["no image was attacked"], PANEL * 3))
    applied = sum(r["applied"] for r in records)
    print(f"{args.attack}: {applied} of {len(records)} images attacked -> {out}")
    return 0


# The command's options -> the registry's parameter of each attack (`--epsilon` is gaussian's sigma and
# salt_pepper's amount, `--margin` the box margin of either box attack).
EPSILON_PARAM = {"fgsm": "epsilon", "pgd": "epsilon", "gaussian": "noise_sigma", "salt_pepper": "noise_amount"}
MARGIN_PARAM = {"eye_boxes": "eye_margin", "jaw_box": "jaw_margin"}


def check_params(args: argparse.Namespace) -> dict[str, Any]:
    """The attack's parameters in the registry's names (defaults filled in); out-of-range values -> CommandError."""
    attack = args.attack
    if attack not in registry.NAMES:
        raise CommandError(f"unknown attack {attack!r}; choose from {', '.join(registry.NAMES)}")
    given: dict[str, Any] = {"box_fill": args.fill, "steps": args.steps, "step_size": args.step_size or 0.0,
                             "random_start": not args.no_random_start, "scale_interpolation": args.interpolation}
    if attack in MARGIN_PARAM and args.margin is not None:
        given[MARGIN_PARAM[attack]] = args.margin
    if attack in EPSILON_PARAM and args.epsilon is not None:
        given[EPSILON_PARAM[attack]] = args.epsilon
    elif args.epsilon is not None:
        raise CommandError(f"--epsilon does not apply to {attack}")
    flags = {"eye_margin": "--margin", "jaw_margin": "--margin", "epsilon": "--epsilon", "noise_sigma": "--epsilon",
             "noise_amount": "--epsilon", "steps": "--steps", "step_size": "--step-size"}
    params: dict[str, Any] = {"seed": args.seed}
    for spec in registry.param_specs(attack):
        if spec.name in ("target_image", "scale_width", "scale_height"):
            continue  # the command picks targets and sizes per image (--target, --scale-size)
        value = given.get(spec.name, spec.default)
        reason = spec.check(value)
        if reason:
            raise CommandError(f"{flags.get(spec.name, spec.name)}: {reason}")
        params[spec.name] = value
    if attack in ("fgsm", "pgd") and args.threads < 1:
        raise CommandError(f"--threads must be >= 1, got {args.threads}")
    if attack == "scaling":
        if args.scale_size is not None and args.scale_size < 1:
            raise CommandError(f"--scale-size must be >= 1, got {args.scale_size}")
        params.update(scale_size=args.scale_size, target=args.target)
    if args.examples < 0:
        raise CommandError(f"--examples must be >= 0, got {args.examples}")
    return params


class Attacker:
    """Per-image attack with what it needs prepared once: landmarks (boxes), the CNN (fgsm/pgd), targets."""

    def __init__(self, args: argparse.Namespace, params: dict[str, Any], dataset: FaceDataset) -> None:
        self.name, self.params, self.dataset = args.attack, params, dataset
        self.seed = args.seed
        needs = registry.get(self.name).needs
        if needs == "faces":
            analyzer = make_analyzer(args)
            subset = dataset if args.only_class is None else dataset.subset(dataset.labels == args.only_class)
            extracted = extract_dataset(subset, analyzer, make_cache(args), progress=not args.quiet)
            index = np.flatnonzero(np.ones(len(dataset), bool) if args.only_class is None
                                   else dataset.labels == args.only_class)
            self.landmarks = np.full((len(dataset), 68, 2), np.nan, np.float32)
            self.landmarks[index] = extracted.landmarks
        if needs == "model":
            self._load_cnn(args)
            self.analyzer: FaceAnalyzer = make_analyzer(args)
        if needs == "target":
            self._prepare_targets(args)

    def _load_cnn(self, args: argparse.Namespace) -> None:
        from emotion_perception.core.errors import ModelFileError
        from emotion_perception.models.cnn import load_cnn

        torch.set_num_threads(args.threads)
        try:
            model, header = load_cnn(args.model)
        except ModelFileError as error:
            raise CommandError(f"{error}; fgsm/pgd need a CNN: pass --model FILE.pt "
                               "(made by `emotion-perception train cnn`)") from None
        self.model = attacks.pixel_model(model, header)
        self.crop = CropSpec.from_header(header)
        self.labels = list(header["labels"])
        self.params["model"] = str(header.get("name", header["arch"]))

    def _prepare_targets(self, args: argparse.Namespace) -> None:
        self.fixed_target = read_gray(args.target) if args.target else None
        labels = self.dataset.labels
        if self.fixed_target is None and len(set(labels)) < 2:
            raise CommandError("scaling needs --target IMAGE when the dataset holds a single class")
        rng = np.random.default_rng(self.seed)
        self.target_index = np.array([
            -1 if self.fixed_target is not None else int(rng.choice(np.flatnonzero(labels != label)))
            for label in labels
        ])

    def attack(self, i: int, gray: np.ndarray) -> tuple[np.ndarray | None, dict[str, Any]]:
        """(attacked grey image or None when it cannot be attacked, extra per-image record fields)."""
        inputs, extra = registry.AttackInputs(), {}
        needs = registry.get(self.name).needs
        if needs == "faces":
            if not np.all(np.isfinite(self.landmarks[i])):
                return None, {"reason": "no face"}
            inputs.faces = [Face.from_landmarks(self.landmarks[i])]
        elif needs == "model":
            inputs.faces = self.analyzer.analyze(gray)[:1]
            if not inputs.faces:
                return None, {"reason": "no face"}
            label = str(self.dataset.labels[i])
            inputs.labels = [self.labels.index(label)] if label in self.labels else None
            inputs.model, inputs.crop = self.model, self.crop
            extra["true_label_used"] = inputs.labels is not None
        elif needs == "target":
            inputs.target, extra = self._scaling_target(i, gray)
            if inputs.target is None:
                return None, extra
        return registry.apply(self.name, gray, self.params, inputs, self.seed + i), extra

    def _scaling_target(self, i: int, gray: np.ndarray) -> tuple[np.ndarray | None, dict[str, Any]]:
        """The victim's view to hide in image i (its square resize of another class's image, or of --target)."""
        side = min(gray.shape)
        size = self.params["scale_size"] or (48 if side >= 96 else max(side // 4, 1))
        if size >= side:
            return None, {"reason": f"image {gray.shape[1]}x{gray.shape[0]} is not larger than {size} px"}
        source = self.fixed_target if self.fixed_target is not None else read_gray(
            self.dataset.paths[self.target_index[i]])
        self.target = cv2.resize(source, (size, size), interpolation=cv2.INTER_AREA)
        extra: dict[str, Any] = {"scale_size": size}
        if self.fixed_target is None:
            extra["target"] = str(self.dataset.paths[self.target_index[i]].relative_to(self.dataset.root))
        return self.target, extra

    def measure(self, gray: np.ndarray, written: np.ndarray) -> tuple[dict[str, float], np.ndarray | None]:
        """Scaling only: PSNR/SSIM of the written image against the source and, after the victim's resize,
        against the target of the last `attack` call; and that resized view. Nothing for other attacks."""
        if self.name != "scaling":
            return {}, None
        interpolation = self.params["scale_interpolation"]
        quality = attacks.scaling_quality(written, gray, self.target, interpolation)
        view = attacks.resize_like_victim(written, self.target.shape[::-1], interpolation)
        return {k: round(v, 3) for k, v in quality.items()}, view


def write_image(path: Path, image: np.ndarray) -> None:
    """Write in the format the suffix names; JPEG at the highest quality."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 100] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), image, params):
        raise CommandError(f"{path}: could not write the image")


def summary(args: argparse.Namespace, params: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    applied = [r for r in records if r["applied"]]
    out: dict[str, Any] = {
        "version": 1, "attack": args.attack, "params": params, "data": str(args.data),
        "only_class": args.only_class, "images": len(records), "applied": len(applied),
    }
    for key in ("linf", "l2", "source_psnr", "source_ssim", "target_psnr", "target_ssim"):
        values = [r[key] for r in applied if key in r]
        if values:
            out[f"mean_{key}"] = float(np.mean(values))
            out[f"max_{key}"] = float(np.max(values))
    out["per_image"] = records
    return out


def panel(image: np.ndarray) -> np.ndarray:
    """A grey image scaled to fit PANEL x PANEL (pixel-sharp when enlarged), centred on mid-grey."""
    h, w = image.shape[:2]
    scale = PANEL / max(h, w)
    interpolation = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
    resized = cv2.resize(image, (max(round(w * scale), 1), max(round(h * scale), 1)), interpolation=interpolation)
    canvas = np.full((PANEL, PANEL), 128, np.uint8)
    y, x = (PANEL - resized.shape[0]) // 2, (PANEL - resized.shape[1]) // 2
    canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return canvas


def title_bar(titles: list[str], width: int) -> np.ndarray:
    bar = np.full((24, width), 255, np.uint8)
    step = width // len(titles)
    for k, title in enumerate(titles):
        cv2.putText(bar, title, (k * step + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.42, 0, 1, cv2.LINE_AA)
    return bar


def example_grid(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> np.ndarray:
    """Rows of original | attacked | |difference| stretched to full range (| the victim's downscaled view)."""
    with_view = any(view is not None for _, _, view in rows)
    lines = []
    for original, attacked, view in rows:
        diff = np.abs(attacked.astype(np.int16) - original.astype(np.int16))
        gain = 255.0 / max(int(diff.max()), 1)
        cells = [panel(original), panel(attacked), panel(np.clip(diff * gain, 0, 255).astype(np.uint8))]
        cv2.putText(cells[2], f"x{gain:.0f}", (4, PANEL - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1, cv2.LINE_AA)
        if with_view:
            cells.append(panel(view if view is not None else np.full((8, 8), 128, np.uint8)))
        lines.append(np.hstack(cells))
    grid = np.vstack(lines)
    titles = ["original", "attacked", "|difference| (gain)"] + (["victim's resize"] if with_view else [])
    return np.vstack([title_bar(titles, grid.shape[1]), grid])
