"""Atomic file output: write to a hidden name beside the target, rename on success, remove on failure, so a
crash or a bad input never leaves a half-written file where a result is expected."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path with the target's suffix (so writers that go by the suffix, such as matplotlib,
    pick the right format); it becomes `path` when the block ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def save_figure(figure: Any, path: str | Path, **options: Any) -> None:
    """Save a matplotlib figure to `path` atomically."""
    with atomic_path(path) as partial:
        figure.savefig(partial, **options)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as partial:
        partial.write_text(text)
