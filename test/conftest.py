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
