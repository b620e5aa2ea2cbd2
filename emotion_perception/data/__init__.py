"""Data in and out: dataset folders and manifests, the landmark cache, frame sources and ROS 2 bags (read and
written with `rosbags`, no ROS installation). Imports the core, features and models."""
