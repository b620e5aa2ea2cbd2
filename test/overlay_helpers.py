"""Running what a robot runs, here: `ros2 launch`, `ros2 run` and the other `ros2` commands of the ROS 2 overlay
(`tools/build_ros_overlay.sh`), as subprocesses with the overlay's environment (conftest.py's `ros_overlay`) and
the test session's private domain and localhost discovery. Every process is stopped, by its process group, when
a test ends."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCALHOST_PROFILE = REPO / "config" / "fastdds_large_frames_localhost.xml"
TRACEBACK = "Traceback (most recent call last)"


def command_words(command: str, replace: dict[str, str] | None = None) -> list[str]:
    """The words of a documented command line with its placeholders (whole words, or `name:=value` values)
    replaced. A `ros2 launch` also gets the loopback-only Fast DDS profile: DDS traffic stays on this machine."""
    replace = replace or {}
    words = []
    for word in shlex.split(command):
        name, sep, value = word.partition(":=")
        words.append(replace.get(word, f"{name}:={replace.get(value, value)}" if sep else word))
    if words[:2] == ["ros2", "launch"]:
        words.append(f"dds_profile:={LOCALHOST_PROFILE}")
    return words


class Process:
    """A command in its own session (so that a signal reaches it and all its children, as Ctrl-C in a terminal
    does), its output in a log file."""

    def __init__(self, words: list[str], env: dict[str, str], log_path: Path) -> None:
        self.words = words
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(words, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=dict(env, PYTHONUNBUFFERED="1"), cwd=log_path.parent,
                                        start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first match of `pattern` in the output, waiting for it (AssertionError with the log if it does not
        come, or the process ends without it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the output of {shlex.join(self.words)} "
                                     f"(exit {self.process.poll()}):\n{self.log()}")
            time.sleep(0.2)

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C: SIGINT to the process group; its exit status. Where it is still running `timeout` s later,
        Ctrl-C once more, as a user at the terminal would (on a loaded machine `ros2 launch` has been seen to
        leave the first one unanswered: no "user interrupted" line in its log); a second `timeout` fails."""
        try:
            for _ in range(2):
                if self.process.poll() is None:
                    os.killpg(self.process.pid, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return self.process.wait(timeout)
            raise AssertionError(f"{shlex.join(self.words)} still running {timeout} s after each of two SIGINTs:\n"
                                 f"{self.log()}")
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to whatever is left of the process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._log.close()


class Processes:
    """The processes a test started; all killed at its end (the `processes` fixture)."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.started: list[Process] = []

    def start(self, words: list[str], name: str, **env: str) -> Process:
        process = Process(words, dict(self.env, **env), self.folder / f"{name}.log")
        self.started.append(process)
        return process

    def run(self, words: list[str], timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess:
        """A command run to its end (stdout and stderr together in `stdout`)."""
        return subprocess.run(words, env=dict(self.env, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, timeout=timeout, cwd=self.folder)

    def run_idempotent(self, words: list[str], timeout: float = 40.0, attempts: int = 3) -> subprocess.CompletedProcess:
        """An idempotent command (`ros2 param set`) run again when it hangs: ros2cli waits for a service's answer
        without a deadline, and Fast DDS drops an answer the node sends before it has matched the new client."""
        for _ in range(attempts - 1):
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.run(words, timeout=timeout)
        return self.run(words, timeout=timeout)

    def run_until(self, words: list[str], done: Callable[[subprocess.CompletedProcess], bool],
                  timeout: float = 60.0) -> subprocess.CompletedProcess:
        """A command run again until `done` says its result is the one wanted (e.g. a node the ros2 daemon has
        not discovered yet); the last result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.run(words, timeout=max(deadline - time.monotonic(), 5.0))
            if done(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def together(self, *calls: Callable[[], subprocess.CompletedProcess]) -> list[subprocess.CompletedProcess]:
        """Independent commands run at the same time (each `ros2` command spends seconds starting up)."""
        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(lambda call: call(), calls))

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()


def launched_nodes(log: str) -> dict[str, int | None]:
    """name-N: exit status of every process `ros2 launch` started, from its log (None while running)."""
    nodes: dict[str, int | None] = {name: None for name in re.findall(r"\[INFO\] \[([\w-]+)\]: process started", log)}
    nodes.update({name: 0 for name in re.findall(r"\[INFO\] \[([\w-]+)\]: process has finished cleanly", log)})
    nodes.update({name: int(code) for name, code in
                  re.findall(r"\[ERROR\] \[([\w-]+)\]: process has died \[pid \d+, exit code (-?\d+)", log)})
    return nodes


def assert_stops_cleanly(launch: Process, expected: set[str]) -> None:
    """Ctrl-C to `ros2 launch`: it and every node it started (`expected`, without the -N suffix) exit 0, with no
    [ERROR] line and no traceback."""
    status = launch.interrupt()
    log = launch.log()
    nodes = launched_nodes(log)
    assert {name.rsplit("-", 1)[0] for name in nodes} == expected, log
    assert status == 0 and all(code == 0 for code in nodes.values()), log
    assert "[ERROR]" not in log and TRACEBACK not in log, log
