"""Environment for ROS 2 processes that must stay on this machine (tests, the demo), and the shipped
Fast DDS profile that lets camera-sized frames through shared memory. No ROS import."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

PACKAGE = "emotion_perception"


def config_dir() -> Path:
    """`share/emotion_perception/config` of a colcon install, or `config/` of the source checkout."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE)) / "config"
        except (PackageNotFoundError, OSError):  # not installed by colcon, or no AMENT_PREFIX_PATH
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / "config"


def dds_profile(localhost: bool) -> Path:
    """Fast DDS profile with a 32 MB shared-memory segment (frames above 512 KB otherwise go over lossy UDP)."""
    return config_dir() / ("fastdds_large_frames_localhost.xml" if localhost else "fastdds_large_frames.xml")


# Fast DDS's own shared-memory segment, used when no profile names one (frames above it go over UDP).
FASTDDS_DEFAULT_SEGMENT = 512 * 1024


def shm_segment_bytes(environ: dict[str, str] | None = None) -> int | None:
    """The shared-memory segment size of the Fast DDS profile in use (FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE): the
    largest frame that can reach another process through it. Fast DDS's default without a profile (or with one that
    names no SHM segment); None under another middleware or when the profile cannot be read."""
    environ = os.environ if environ is None else environ
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") not in ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp"):
        return None
    path = environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    if not path:
        return FASTDDS_DEFAULT_SEGMENT
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    sizes = [int(node.findtext("{*}segment_size") or 0) for node in root.iterfind(".//{*}transport_descriptor")
             if (node.findtext("{*}type") or "").strip() == "SHM"]
    return max(sizes, default=0) or FASTDDS_DEFAULT_SEGMENT


def localhost_environment(domain_id: int) -> dict[str, str]:
    """Variables that keep DDS discovery and traffic on this machine, in a private domain."""
    env = {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_STATIC_PEERS": "",
        "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
    }
    profile = dds_profile(localhost=True)
    if profile.is_file():
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(profile)
    return env
