"""`colcon build` of the package (colcon from PyPI, against the wheel-installed ROS) installs what a robot needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_launch_static import console_scripts

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ["setup.py", "setup.cfg", "package.xml", "resource", "emotion_perception", "launch", "config"]


def colcon() -> Path:
    path = Path(sys.executable).parent / "colcon"
    found = path if path.is_file() else shutil.which("colcon")
    if not found:
        pytest.skip("colcon is not installed (tools/requirements.txt lists colcon-core, colcon-ros, "
                    "colcon-python-setup-py)")
    return Path(found)


def test_colcon_build_installs_launch_config_package_xml_scripts_and_package_data(tmp_path: Path):
    source = tmp_path / "src" / "emotion_perception"
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in PACKAGE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    install = tmp_path / "install"
    result = subprocess.run(
        [str(colcon()), "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(tmp_path / "src"),
         "--build-base", str(tmp_path / "build"), "--install-base", str(install)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=dict(os.environ, COLCON_HOME=str(tmp_path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = install / "emotion_perception"
    share = prefix / "share" / "emotion_perception"
    for path in ("launch/emotion_perception.launch.py", "config/emotion_perception.yaml", "package.xml"):
        assert (share / path).is_file(), path
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "emotion_perception").is_file()
    for script in console_scripts():
        assert os.access(prefix / "lib" / "emotion_perception" / script, os.X_OK), script
    site = next(prefix.glob("lib/python3*/site-packages/emotion_perception"))
    for data in ("models/default_forest.npz", "assets/manifest.csv", "assets/demo_00.jpg", "assets/PROVENANCE.md"):
        assert (site / data).is_file(), data
    located = subprocess.run(
        [sys.executable, "-c", "import emotion_perception.data.sources as s; print(s.DEMO_FRAMES)"],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(site.parent)), cwd=tmp_path,
    )
    assert Path(located.stdout.strip()) == site / "assets", located.stderr
