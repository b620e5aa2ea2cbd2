"""Test session set-up. The ROS environment is fixed here, at import, before any rclpy.init():
discovery on localhost only, a domain id private to this test session, Fast DDS, and an ament prefix
for the wheel-installed ROS."""

import os
import sys
from pathlib import Path

from emotion_perception.ros.env import localhost_environment

# 100..199: a session-private domain id, so that parallel sessions on one machine do not see each other.
# Discovery and UDP on loopback only; large frames through shared memory (config/fastdds_large_frames_localhost.xml).
os.environ.update(localhost_environment(100 + os.getpid() % 100))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # face_images, ros_helpers


import pytest


@pytest.fixture(scope="session")
def ros_context():
    """One rclpy context for the test session's probe nodes (created only when a node test runs)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


@pytest.fixture(scope="session")
def ros_overlay() -> dict[str, str]:
    """The environment of `. .ros_overlay/setup.sh` (the launch system, the `ros2` command line and hri_msgs) on
    top of this session's: the overlay built first by tools/build_ros_overlay.sh, which returns at once when it is
    up to date. At the end, the ros2 daemon that the `ros2` commands started is stopped."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    sources = Path(os.environ.get("ROS_SRC", repo.parent / "shared" / "ros_src"))
    if not sources.is_dir():
        pytest.skip(f"no ROS sources for the overlay at {sources} (../shared/ros_src beside the repository)")
    build = subprocess.run([str(repo / "tools" / "build_ros_overlay.sh")], capture_output=True, text=True,
                           timeout=1800)
    assert build.returncode == 0, build.stdout + build.stderr
    dump = subprocess.run(["bash", "-c", ". .ros_overlay/setup.sh && env -0"], cwd=repo, capture_output=True,
                          text=True, check=True)
    env = dict(item.split("=", 1) for item in dump.stdout.split("\0") if "=" in item)
    yield env
    subprocess.run(["ros2", "daemon", "stop"], env=env, capture_output=True, timeout=60)


@pytest.fixture
def processes(ros_overlay, tmp_path):
    """Start and run commands with the overlay's environment; whatever is still running is killed at the end."""
    from overlay_helpers import Processes

    started = Processes(ros_overlay, tmp_path)
    yield started
    started.kill_all()
