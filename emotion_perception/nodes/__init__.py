"""rclpy nodes: thin wrappers that declare parameters, convert messages, call the pipeline and publish."""
