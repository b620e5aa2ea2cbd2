"""Experiments, no ROS: evaluation protocols and metrics, cross-validation, robustness trials and their reports,
bag evaluation, live scoring, explanation fitting and the benchmark. Imports everything below it."""
