"""Where independent units of work run: in this process, in local worker processes, or on a Dask cluster.

Experiments (the trials' cells, the folds of `evaluate --repeats`, the bags of `bag evaluate`) hand an executor a
function, one large `shared` object (the prepared data) and many small tasks. `Executor.run` yields each task's
`Outcome` as it finishes, in any order; results never depend on where a task ran, because every task seeds from
its own arguments and runs with the same thread counts (`limit_threads`) in every process.

- `InProcess`: one task after the other here (`--jobs 1`).
- `DaskExecutor`: Dask distributed, either a local cluster of `jobs` single-threaded worker processes started here
  (`--jobs N`) or an existing cluster (`--cluster tcp://HOST:8786`). `shared` is sent once, as the result of one
  task every cell depends on, so each worker fetches it once (from the scheduler or a peer), never once per task;
  the scheduler keeps it, so it is sent again if every worker holding it is lost. A task whose worker dies is run
  again on another (Dask's `allowed-failures`, 3 by default); after that it comes back as a failed `Outcome`,
  and the others go on. Tasks marked `gpu` ask for the worker resource `GPU` (workers started with
  `--resources GPU=1`).

Dask is imported only when a `DaskExecutor` is made (about 1.5 s).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotion_perception.core.errors import ExecutorError

# Test-only fault injection: a task whose key contains the text of FAULT_ENV ends its worker process (os._exit)
# after computing and before returning, as a machine that dies mid-task would. With FAULT_ONCE_ENV naming a file,
# only the first such task dies (the file is created then). Honoured in worker processes only.
FAULT_ENV = "EMOTION_PERCEPTION_TEST_KILL_TASK"
FAULT_ONCE_ENV = "EMOTION_PERCEPTION_TEST_KILL_ONCE"
_IN_WORKER = False


@dataclass(frozen=True)
class Task:
    """One unit of work: `key` names it (unique within a run), `args` are its own small arguments."""

    key: str
    args: Any
    gpu: bool = False


@dataclass
class Outcome:
    """What came back for one task: `value`, or `error` (a worker lost too often) with the value None."""

    task: Task
    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    worker: str = ""


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def limit_threads(threads: int) -> Any:
    """Limit BLAS/OpenMP pools (threadpoolctl) and torch's intra-op threads, where torch is loaded, to `threads`;
    returns the threadpoolctl context (restored when it is closed)."""
    from threadpoolctl import threadpool_limits

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threadpool_limits(threads)


def _call(function: Callable[[Any, Any], Any], shared: Any, task: Task, threads: int) -> tuple[Any, float, str]:
    """Run one task with the thread limits; (value, seconds, where)."""
    started = time.perf_counter()
    with limit_threads(threads):
        value = function(shared, task.args)
    seconds = time.perf_counter() - started
    _maybe_die(task.key)
    return value, seconds, f"{socket.gethostname()}:{os.getpid()}"


def _maybe_die(key: str) -> None:
    text = os.environ.get(FAULT_ENV)
    if not _IN_WORKER or not text or text not in key:
        return
    once = os.environ.get(FAULT_ONCE_ENV)
    if once:
        try:
            Path(once).touch(exist_ok=False)
        except FileExistsError:
            return
    os._exit(70)


def _hold(value: Any) -> Any:
    """The task whose result is the shared object (see the module's docstring)."""
    return value


def _worker_call(function: Callable[[Any, Any], Any], shared: Any, task: Task,
                 threads: int) -> tuple[Any, float, str]:
    global _IN_WORKER
    _IN_WORKER = True
    return _call(function, shared, task, threads)


def code_digest() -> str:
    """Digest of this package's source and of the versions of the libraries that compute results: a worker whose
    digest differs could give other numbers."""
    import numpy
    import sklearn

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    versions = [platform.python_version(), numpy.__version__, sklearn.__version__]
    try:
        import torch
        versions.append(torch.__version__)
    except ImportError:  # pragma: no cover - torch is a requirement
        pass
    digest.update(repr(versions).encode())
    return digest.hexdigest()[:16]


class Executor:
    """Runs `function(shared, task.args)` for every task; see the module's docstring."""

    workers: int = 1
    description: str = "this process"

    def run(self, function: Callable[[Any, Any], Any], shared: Any, tasks: Iterable[Task]) -> Iterator[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(Executor):
    """One task after the other in this process."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def run(self, function: Callable[[Any, Any], Any], shared: Any, tasks: Iterable[Task]) -> Iterator[Outcome]:
        for task in tasks:
            value, seconds, where = _call(function, shared, task, self.threads)
            yield Outcome(task, value, None, seconds, where)


class DaskExecutor(Executor):
    """Dask distributed: a local cluster of `jobs` worker processes, or the cluster at `address`."""

    def __init__(self, jobs: int = 2, address: str | None = None, threads: int = 1) -> None:
        try:
            import distributed
        except ImportError:  # pragma: no cover - a requirement of the package
            raise ExecutorError("--jobs > 1 and --cluster need Dask: pip install 'dask[distributed]'") from None
        self.threads, self.address = threads, address
        self._cluster = None
        if address is None:
            self._cluster = distributed.LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.CRITICAL)
            self.client = distributed.Client(self._cluster)
            self.description = f"{jobs} local worker processes"
        else:
            try:
                self.client = distributed.Client(address, timeout="20s")
            except (OSError, TimeoutError) as error:
                raise ExecutorError(f"--cluster {address}: cannot reach the Dask scheduler ({error})") from None
            self.client.wait_for_workers(1, timeout=120)
            self._check_workers()
            self.description = f"the Dask cluster at {address}"
        self.workers = max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))
        self.description += f", {self.workers} workers"

    def _check_workers(self) -> None:
        """Every worker must run the same code and library versions as this process."""
        mine = code_digest()
        theirs = self.client.run(code_digest)
        different = sorted(worker for worker, digest in theirs.items() if digest != mine)
        if different:
            raise ExecutorError(f"--cluster {self.address}: worker(s) {', '.join(different)} run another version "
                                "of emotion_perception or of python/numpy/scikit-learn/torch; install the same on "
                                "every worker")

    def gpu_workers(self) -> int:
        info = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return sum(1 for worker in info if worker.get("resources", {}).get("GPU", 0) >= 1)

    def run(self, function: Callable[[Any, Any], Any], shared: Any, tasks: Iterable[Task]) -> Iterator[Outcome]:
        from distributed import KilledWorker, as_completed
        from distributed.client import FutureCancelledError

        tasks = list(tasks)
        if not tasks:
            return
        if any(t.gpu for t in tasks) and not self.gpu_workers():
            raise ExecutorError("GPU tasks, but no worker offers the resource GPU (start GPU workers with "
                                "`dask worker ADDRESS --resources GPU=1`)")
        run_id = uuid.uuid4().hex[:8]
        with warnings.catch_warnings():  # Dask warns of a large graph: this is the one time the data is sent
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            held = self.client.submit(_hold, shared, key=f"shared-{run_id}", pure=False)
        self.client.replicate([held])  # on every worker now, so that tasks go where a core is free
        futures = {}
        for task in tasks:
            future = self.client.submit(_worker_call, function, held, task, self.threads, key=f"{task.key}-{run_id}",
                                        pure=False, resources={"GPU": 1} if task.gpu else None)
            futures[future] = task
        try:
            for future in as_completed(futures):
                task = futures.pop(future)
                try:
                    value, seconds, where = future.result()
                except (KilledWorker, FutureCancelledError) as error:
                    yield Outcome(task, None, f"{type(error).__name__}: {error}")
                    continue
                finally:
                    future.release()
                yield Outcome(task, value, None, seconds, where)
        finally:
            for future in futures:
                future.cancel()
            held.release()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


@dataclass(frozen=True)
class ExecutorSettings:
    """Where to run: `cluster` (a Dask scheduler's address), else `jobs` local processes (None: one per available
    core; 1: this process)."""

    jobs: int | None = 1
    cluster: str | None = None

    def check(self) -> None:
        if self.jobs is not None and self.jobs < 1:
            raise ExecutorError(f"--jobs must be >= 1, got {self.jobs}")

    def make(self, threads: int = 1, tasks: int | None = None) -> Executor:
        """The executor, with `threads` threads per task; no more local processes than `tasks`."""
        self.check()
        if self.cluster:
            return DaskExecutor(address=self.cluster, threads=threads)
        jobs = available_cores() if self.jobs is None else self.jobs
        jobs = min(jobs, tasks) if tasks is not None else jobs
        return InProcess(threads) if jobs <= 1 else DaskExecutor(jobs, threads=threads)
