"""ament_python build script: installs the library, its console scripts and the launch/config/model data."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "emotion_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["models/*.npz", "models/*.json", "models/*.pt", "assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="emotion_perception developers",
    maintainer_email="emotion-perception@example.org",
    description="Facial emotion perception for ROS 2 with adversarial robustness trials.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            f"emotion-perception = {PACKAGE}.cli:main",
            f"landmark_emotion_node = {PACKAGE}.ros.nodes.landmark_emotion_node:main",
            f"image_source_node = {PACKAGE}.ros.nodes.image_source_node:main",
            f"resnet_emotion_node = {PACKAGE}.ros.nodes.resnet_emotion_node:main",
            f"adversarial_injector_node = {PACKAGE}.ros.nodes.adversarial_injector_node:main",
            f"scorer_node = {PACKAGE}.ros.nodes.scorer_node:main",
        ],
    },
)
