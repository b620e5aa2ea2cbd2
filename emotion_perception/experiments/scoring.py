"""Scores of classifier outputs against ground truth, matched by stamp, and the report folder they go to.

No ROS import: `scorer_node` feeds a `Scoreboard` from `ground_truth/emotion` and each classifier's
`emotion/detail` topic; `bag evaluate` feeds it the documents it computed offline. Both write the same
report folder: `report.md` for people and `results.json` for programs.

A model's answer for a frame is the label of the primary (first, largest) face of its detail document,
or None when it found no face (counted wrong, as `evaluation.metrics` does). A ground-truth frame for
which a model published no detail document at all is *dropped* for that model: `accuracy` is over the
answered frames, `accuracy_with_dropped` counts dropped frames as wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotion_perception.core.atomic import write_text_atomic
from emotion_perception.core.labels import EMOTIONS
from emotion_perception.experiments.evaluation import metrics

RESULTS_VERSION = 1
REPORT_FILES = ("report.md", "results.json")

@dataclass(frozen=True)
class Answer:
    """A model's output for one frame: the primary face's label and confidence (None: no face), and whether the
    tamper check flagged it (None: no face, or no check)."""

    label: str | None
    confidence: float | None
    flagged: bool | None = None


def stamp_ns(record: dict[str, Any]) -> int:
    """The stamp of a ground-truth record or detail document in nanoseconds (KeyError/TypeError if absent)."""
    stamp = record["stamp"]
    return int(stamp["sec"]) * 1_000_000_000 + int(stamp["nanosec"])


def answer_of(detail: dict[str, Any]) -> Answer:
    faces = detail.get("faces") or []
    if not faces:
        return Answer(None, None)
    tampered = faces[0].get("tampered")
    return Answer(str(faces[0]["label"]), float(faces[0]["confidence"]),
                  None if tampered is None else bool(tampered["flag"]))


class Scoreboard:
    """Ground-truth records and each model's answers, by stamp. Models are keyed by their detail topic."""

    def __init__(self, models: Sequence[str]) -> None:
        self.models = list(models)
        self.truth: dict[int, dict[str, Any]] = {}
        self.answers: dict[str, dict[int, Answer]] = {model: {} for model in self.models}
        self.model_names: dict[str, str] = dict.fromkeys(self.models, "")
        self.ignored_truth = 0  # records whose label is not an emotion label

    def add_truth(self, record: dict[str, Any]) -> int:
        """Store a ground-truth record; its stamp. ValueError for a record without stamp or known label."""
        try:
            stamp = stamp_ns(record)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"ground-truth record without a valid stamp ({error})") from None
        if record.get("label") not in EMOTIONS:
            self.ignored_truth += 1
            raise ValueError(f"ground-truth label {record.get('label')!r} is not one of {', '.join(EMOTIONS)}")
        self.truth[stamp] = record
        return stamp

    def add_detail(self, model: str, detail: dict[str, Any]) -> int:
        """Store a model's emotion/detail document; its stamp. ValueError for a malformed document."""
        try:
            stamp = stamp_ns(detail)
            answer = answer_of(detail)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ValueError(f"{model}: malformed detail document ({error})") from None
        self.answers[model][stamp] = answer
        self.model_names[model] = str(detail.get("model", ""))
        return stamp

    def complete(self) -> bool:
        """Every ground-truth frame seen so far has an answer from every model."""
        return all(set(self.truth) <= set(answers) for answers in self.answers.values())

    def running(self) -> dict[str, Any]:
        """Running accuracy per model over the frames both scored and labelled so far (for `scores`)."""
        out: dict[str, Any] = {"ground_truth_frames": len(self.truth), "models": {}}
        for model in self.models:
            answered = [s for s in self.truth if s in self.answers[model]]
            correct = sum(self.answers[model][s].label == self.truth[s]["label"] for s in answered)
            out["models"][model] = {
                "model": self.model_names[model], "scored": len(answered), "correct": correct,
                "accuracy": correct / len(answered) if answered else None,
                "unanswered": len(self.truth) - len(answered),
            }
        return out

    def model_results(self, model: str) -> dict[str, Any]:
        """Metrics of one model over its answered frames, plus drops and the per-frame table."""
        stamps = sorted(self.truth)
        answers = self.answers[model]
        answered = [s for s in stamps if s in answers]
        y_true = [self.truth[s]["label"] for s in answered]
        y_pred = [answers[s].label for s in answered]
        present = set(y_true) | {p for p in y_pred if p is not None}
        labels = [label for label in EMOTIONS if label in present]
        result = metrics(y_true, y_pred, labels) if answered else {"accuracy": None, "n": 0, "labels": labels}
        correct = sum(t == p for t, p in zip(y_true, y_pred))
        frames = [{
            "stamp": {"sec": s // 1_000_000_000, "nanosec": s % 1_000_000_000},
            "file": self.truth[s].get("file"), "label": self.truth[s]["label"],
            "prediction": answers[s].label if s in answers else None,
            "confidence": answers[s].confidence if s in answers else None,
            "answered": s in answers,
        } for s in stamps]
        return {
            **result, "model": self.model_names[model], "ground_truth_frames": len(stamps),
            "answered": len(answered), "dropped": len(stamps) - len(answered),
            "accuracy_with_dropped": correct / len(stamps) if stamps else None,
            "answers_without_ground_truth": len(set(answers) - set(self.truth)),
            "tamper": self._tamper(answered, answers), "frames": frames,
        }

    def _tamper(self, answered: list[int], answers: dict[int, Answer]) -> dict[str, Any] | None:
        """How often the tamper check flagged the primary face of a labelled frame, and the accuracy on the
        flagged and the other faces; None when the answers carry no check."""
        checked = [s for s in answered if answers[s].flagged is not None]
        if not checked:
            return None
        flagged = [s for s in checked if answers[s].flagged]
        passed = [s for s in checked if not answers[s].flagged]

        def accuracy(stamps: list[int]) -> float | None:
            return sum(answers[s].label == self.truth[s]["label"] for s in stamps) / len(stamps) if stamps else None

        return {"faces_checked": len(checked), "flagged": len(flagged), "flag_rate": len(flagged) / len(checked),
                "accuracy_flagged": accuracy(flagged), "accuracy_not_flagged": accuracy(passed)}

    def results(self, kind: str, source: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The results.json document: every model, with the first model's headline figures at the top."""
        models = {model: self.model_results(model) for model in self.models}
        first = models[self.models[0]] if self.models else {}
        headline = {key: first.get(key) for key in ("accuracy", "accuracy_with_dropped", "per_class_recall",
                                                    "confusion", "labels", "n", "n_no_face", "dropped", "tamper")}
        return {
            "version": RESULTS_VERSION, "kind": kind, "source": source,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ground_truth_frames": len(self.truth),
            "ignored_ground_truth": self.ignored_truth, **headline, **(extra or {}), "models": models,
        }


# ---------------------------------------------------------------------------------------------- reports


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def report_markdown(results: dict[str, Any]) -> str:
    """report.md: a summary table of the models, then per-class recall and the confusion matrix of each."""
    lines = [f"# Emotion scores: {results['kind']}", "",
             f"- source: `{results['source']}`", f"- created: {results['created']}",
             f"- ground-truth frames: {results['ground_truth_frames']}"]
    lines += [f"- {key}: {value}" for key, value in results.get("settings", {}).items()]
    lines += ["", "A frame a model published no answer for is *dropped* for it: **accuracy** is over the "
              "answered frames, *with dropped* counts drops as wrong. No face found counts as wrong.", "",
              "| topic | model | accuracy | with dropped | answered | dropped | no face | macro F1 | 3-class |",
              "|---|---|---|---|---|---|---|---|---|"]
    for topic, r in results["models"].items():
        lines.append(f"| `{topic}` | {r['model'] or '?'} | {_percent(r['accuracy'])} | "
                     f"{_percent(r['accuracy_with_dropped'])} | {r['answered']} | {r['dropped']} | "
                     f"{r.get('n_no_face', 0)} | {_percent(r.get('macro_f1'))} | "
                     f"{_percent(r.get('accuracy_3class'))} |")
    checked = {topic: r["tamper"] for topic, r in results["models"].items() if r.get("tamper")}
    if checked:
        lines += ["", "## Tamper check", "", "The primary face of each answered frame, as the node's `tampered` flag "
                  "says: under an attack the flagged share is the check's true-positive rate, on clean frames its "
                  "false-positive rate.", "",
                  "| topic | faces checked | flagged | accuracy, flagged | accuracy, not flagged |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{topic}` | {t['faces_checked']} | {t['flagged']} ({_percent(t['flag_rate'])}) | "
                  f"{_percent(t['accuracy_flagged'])} | {_percent(t['accuracy_not_flagged'])} |"
                  for topic, t in checked.items()]
    for topic, r in results["models"].items():
        if not r["answered"]:
            continue
        labels = r["labels"]
        lines += ["", f"## `{topic}`: per-class recall", "", "| class | recall | frames |", "|---|---|---|"]
        for label in labels:
            frames = sum(1 for f in r["frames"] if f["answered"] and f["label"] == label)
            lines.append(f"| {label} | {_percent(r['per_class_recall'][label])} | {frames} |")
        lines += ["", f"## `{topic}`: confusion matrix (rows: true, columns: predicted)", "",
                  "| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |"
                  for label, row in zip(labels, r["confusion"])]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, results: dict[str, Any]) -> None:
    """Write report.md and results.json into `out_dir` (created if needed), each file atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(results, indent=2) + "\n"),
                       ("report.md", report_markdown(results))):
        write_text_atomic(out_dir / name, text)


def check_output_folder(out: str | Path) -> None:
    """Refuse, before any work, an output folder holding anything but an earlier report (ValueError)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or not is_replaceable(out)):
        raise ValueError(f"{out}: exists and is not an earlier report folder; choose a new or empty folder")


def is_replaceable(folder: Path) -> bool:
    """An empty folder, or one an earlier report was written to (results.json of this format inside)."""
    entries = list(folder.iterdir())
    if not entries:
        return True
    try:
        return json.loads((folder / "results.json").read_text()).get("version") == RESULTS_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def replace_folder(staged: Path, out: Path) -> None:
    """Move a completed folder to `out`, replacing an empty or earlier report folder there."""
    check_output_folder(out)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        staged.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(out)
