"""The pure core, no ROS: images and camera frames, faces, landmarks, tracking, the per-frame pipeline, labels,
parameter specs, the detail document, and `errors` (every exception, importing nothing). Imports nothing above
it."""
