"""Atomic file output: write to a hidden name beside the target, rename on success, remove on failure, so a
crash, a bad input or a signal never leaves a half-written file where a result is expected. `check_writable`
tells before any work whether an output can be written at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emotion_perception.core.errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path with the target's suffix (so writers that go by the suffix, such as matplotlib,
    pick the right format); it becomes `path` when the block ends without an exception. OutputError when the
    file cannot be written (an OSError in the block)."""
    path = Path(path)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield partial
        os.replace(partial, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot write it ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def check_writable(path: str | Path, folder: bool = False) -> None:
    """Raise OutputError unless the file (or, with `folder`, the folder) `path` can be created or replaced:
    its nearest existing ancestor must be a folder in which a file can be created (tried with a hidden
    temporary file without a name where the file system allows it). Nothing is left behind."""
    path = Path(path)
    if path.is_dir() and not folder:
        raise OutputError(f"{path}: is a folder, not a file")
    if path.exists() and not path.is_dir() and folder:
        raise OutputError(f"{path}: exists and is not a folder")
    base = path if folder and path.is_dir() else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise OutputError(f"{path}: cannot be created, {base} is not a folder")
    try:
        with tempfile.TemporaryFile(prefix=".emotion-perception-probe-", dir=base):
            pass
    except OSError as error:
        raise OutputError(f"{path}: cannot write in {base} ({error.strerror or error})") from None


def save_figure(figure: Any, path: str | Path, **options: Any) -> None:
    """Save a matplotlib figure to `path` atomically."""
    with atomic_path(path) as partial:
        figure.savefig(partial, **options)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as partial:
        partial.write_text(text)
