"""ROS 2 plumbing: the nodes' parameter tables, the environment that keeps DDS on this machine, the shared node
plumbing, and `nodes/` (thin: parameters in, messages out). The only layer that imports rclpy."""
