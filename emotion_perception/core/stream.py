"""Health of a camera stream as a node sees it, without ROS: frames lost before the node (estimated from the input
stamps), frames near the size limit of the transport, and the diagnostics level after bad frames.

ROS 2 images carry no sequence number, so a frame lost in transport (dropped by DDS, overwritten in a keep-last-1
reader before the node took it, too large for the shared-memory segment) leaves no trace but a gap in the stamps.
At a steady camera rate the gaps tell how many frames are missing.
"""

from __future__ import annotations

from collections import deque

# After a bad frame or a processing error, the diagnostics stay WARN this long (the counts are kept for good).
FAILURE_WARN_S = 10.0


class LostFrames:
    """Estimates the frames that never arrived from the gaps in the stamps of a steady stream.

    The first `warmup` intervals give the camera's period and so the index of each of those frames. From then on
    every frame gets the index nearest to where the straight line fitted to all (index, stamp) pairs so far puts it
    (a least-squares fit, updated in constant time), like a phase lock: stamp jitter of a good part of a period is
    not taken for losses (exact up to a third of a period; 0.2 % off with 6 ms at 120 Hz), and the estimate does not
    drift over long runs. A skipped index is a lost frame. Repeated stamps (a frame sent twice) and stamps that go
    back by less than `max_gap_s` (out of order) are ignored. A gap longer than `max_gap_s` or a jump back further
    than that (a pause, a bag replayed again) starts the estimate afresh. So does a change of rate: a faster camera
    shows as a lost lock (half of the last `recent` frames 0.4 period or more off their index); a slower one as the
    same gap before every one of the last `recent` frames, whose losses are then taken back (a stream that loses
    exactly the same number of frames before each of `recent` frames in a row reads as a slower one).
    """

    def __init__(self, warmup: int = 20, max_gap_s: float = 2.0, recent: int = 32) -> None:
        self.warmup = warmup
        self.max_gap_ns = round(max_gap_s * 1e9)
        self.lost = 0  # frames estimated lost, in all
        self.restarts = 0  # times the estimate started afresh (pauses, jumps, rate changes)
        self._warm: list[int] = []  # the stamps before the lock, relative to the first
        self._off: deque[bool] = deque(maxlen=recent)  # the recent frames' distance from their index is large
        self._missing: deque[int] = deque(maxlen=recent)  # frames lost before each of the recent frames
        self._first = self._last = 0
        self._index = 0
        self._fit = _LineFit()

    @property
    def period_s(self) -> float | None:
        """The camera's period as estimated (None while warming up)."""
        return self._fit.slope / 1e9 if self._fit.ready else None

    def add(self, stamp_ns: int) -> int:
        """Take the next received frame's stamp; the number of frames lost just before it."""
        if stamp_ns <= 0:
            return 0
        last = self._last
        if not last or abs(stamp_ns - last) > self.max_gap_ns:
            self._restart(stamp_ns, counted=bool(last))
            return 0
        if stamp_ns <= last:
            return 0
        self._last = stamp_ns
        elapsed = stamp_ns - self._first
        if not self._fit.ready:
            return self._lock_on(elapsed)
        period = self._fit.slope
        index = max(round((elapsed - self._fit.at(0)) / period), self._index + 1)
        missing = index - self._index - 1
        self._off.append(abs(elapsed - self._fit.at(index)) >= 0.4 * period)
        self._missing.append(missing)
        if len(self._off) == self._off.maxlen:
            if all(self._missing) and len(set(self._missing)) == 1:
                # the camera slowed down (to a whole fraction of its rate; another rate loses the lock): what looked
                # lost was never sent. A reader too slow to take every frame leaves gaps of varying size: counted.
                self.lost -= sum(self._missing) - missing
                self._restart(stamp_ns, counted=True)
                return 0
            if sum(self._off) >= len(self._off) / 2:
                self._restart(stamp_ns, counted=True)
                return 0
        self._index = index
        self._fit.add(index, elapsed)
        self.lost += missing
        return missing

    def _lock_on(self, elapsed: int) -> int:
        """Collect the warm-up stamps; with enough, index them by their period (the frames lost among them)."""
        self._warm.append(elapsed)
        if len(self._warm) <= self.warmup:
            return 0
        intervals = [b - a for a, b in zip(self._warm, self._warm[1:])]
        period = sorted(intervals)[len(intervals) // 2]  # a single period unless half of the frames were lost
        for _ in range(3):  # refined over the whole span, so that jitter and longer gaps do not round wrong
            period = self._warm[-1] / sum(max(1, round(interval / period)) for interval in intervals)
        index = 0
        for interval, stamp in zip(intervals, self._warm[1:]):
            index += max(1, round(interval / period))
            self._fit.add(index, stamp)
        self._fit.add(0, 0)
        missing = index - self.warmup
        self._index, self._warm = index, []
        self.lost += missing
        return missing

    def _restart(self, stamp_ns: int, counted: bool) -> None:
        self.restarts += counted
        self._warm = [0]
        self._off.clear()
        self._missing.clear()
        self._fit = _LineFit()
        self._first = self._last = stamp_ns
        self._index = 0


class _LineFit:
    """Least-squares line through (x, y) points, updated one point at a time (Welford's co-moments)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean_x = self.mean_y = self.c_xy = self.c_xx = 0.0

    @property
    def ready(self) -> bool:
        return self.c_xx > 0

    @property
    def slope(self) -> float:
        return self.c_xy / self.c_xx

    def at(self, x: float) -> float:
        return self.mean_y + self.slope * (x - self.mean_x)

    def add(self, x: float, y: float) -> None:
        self.n += 1
        dx = x - self.mean_x
        self.mean_x += dx / self.n
        self.mean_y += (y - self.mean_y) / self.n
        self.c_xy += dx * (y - self.mean_y)
        self.c_xx += dx * (x - self.mean_x)


class FrameSizeWatch:
    """Says once when frames come near the size limit of the transport: the shared-memory segment of the Fast DDS
    profile. A frame larger than the segment goes over UDP instead, slower and, with best-effort QoS, often lost."""

    def __init__(self, limit_bytes: int | None, fraction: float = 0.75) -> None:
        self.limit_bytes = limit_bytes
        self.fraction = fraction
        self.warned = False

    def check(self, size_bytes: int, what: str) -> str | None:
        """A warning the first time a frame of `size_bytes` is above `fraction` of the limit, else None; `what`
        names the frame."""
        if self.warned or not self.limit_bytes or size_bytes < self.fraction * self.limit_bytes:
            return None
        self.warned = True
        where = "larger than" if size_bytes > self.limit_bytes else "near the size of"
        return (f"{what} is {size_bytes / 2**20:.1f} MiB, {where} the {self.limit_bytes / 2**20:g} MiB shared-memory "
                "segment of the Fast DDS profile: larger frames go over UDP, slower and often lost (a larger "
                "segment_size, smaller frames; docs/nodes.md#large-frames-the-fast-dds-profile)")


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
