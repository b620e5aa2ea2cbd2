"""Health of a camera stream as a node sees it, without ROS: the diagnostics level after bad frames."""

from __future__ import annotations

# After a bad frame or a processing error, the diagnostics stay WARN this long (the counts are kept for good).
FAILURE_WARN_S = 10.0


def health(state: str, seconds_since_input: float | None, stale_after_s: float, seconds_since_failure: float | None,
           failures: int, last_failure: str) -> tuple[bool, str]:
    """(ok, message) of a node's diagnostics: not ok while it is not active, without input for `stale_after_s`, or
    within FAILURE_WARN_S of its last bad frame or error; ok again afterwards (`failures` counts them all)."""
    if state != "active":
        return False, f"node {state}"
    if seconds_since_input is None or seconds_since_input > stale_after_s:
        return False, "no input frames"
    if seconds_since_failure is not None and seconds_since_failure <= FAILURE_WARN_S:
        return False, (f"processing; {failures} bad frame(s)/error(s), the last {seconds_since_failure:.1f} s ago: "
                       f"{last_failure}")
    if failures:
        return True, f"processing ({failures} bad frame(s)/error(s) so far, none in the last {FAILURE_WARN_S:g} s)"
    return True, "processing"
