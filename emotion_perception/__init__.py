"""Facial emotion perception for ROS 2: dlib landmarks -> geometry features -> RandomForest."""

__version__ = "0.1.0"
