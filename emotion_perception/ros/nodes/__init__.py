"""rclpy nodes, one per file, each started by a console script of the same name."""
