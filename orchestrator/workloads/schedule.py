"""When each operation of a workload is due: a constant rate, an optional ramp to it, and bursts. Pure.

The rate is piecewise linear in time, so the count of operations due by time t, N(t), is piecewise
quadratic, and operation k is due where N(t) = k: one square root, no accumulated error, whatever k is.
"""

from __future__ import annotations

import bisect
import math

from orchestrator.model.workload import WorkloadSpec


class RateSchedule:
    """Segments [start, end) with a rate going linearly from `low` to `high`; the last one lasts for ever."""

    def __init__(self, spec: WorkloadSpec) -> None:
        cuts = {0.0}
        if spec.ramp is not None:
            cuts.add(spec.ramp.duration)
        for burst in spec.bursts:
            cuts |= {burst.start, burst.start + burst.duration}
        self._spec = spec
        self.starts = sorted(cuts)
        ends = [*self.starts[1:], math.inf]
        self.rates = [(self._rate(a, b, a), self._rate(a, b, b)) for a, b in zip(self.starts, ends, strict=True)]
        self.counts = [0.0]
        for (a, b), (low, high) in zip(zip(self.starts, ends, strict=True), self.rates, strict=True):
            if b < math.inf:
                self.counts.append(self.counts[-1] + (low + high) / 2 * (b - a))

    def _rate(self, a: float, b: float, t: float) -> float:
        """The rate at `t` within the segment [a, b): the last burst declared over it, else the ramp or the rate."""
        covering = [x for x in self._spec.bursts if x.start <= a and b <= x.start + x.duration]
        if covering:
            return covering[-1].rate
        ramp = self._spec.ramp
        if ramp is not None and t <= ramp.duration:
            return ramp.start_rate + (self._spec.rate - ramp.start_rate) * t / ramp.duration
        return self._spec.rate

    def count(self, t: float) -> float:
        """Operations due in [0, t): N(t)."""
        i = bisect.bisect_right(self.starts, t) - 1
        a, (low, high) = self.starts[i], self.rates[i]
        tau = t - a
        slope = 0.0 if i + 1 >= len(self.starts) else (high - low) / (self.starts[i + 1] - a)
        return self.counts[i] + low * tau + slope * tau * tau / 2

    def at(self, k: int) -> float:
        i = bisect.bisect_right(self.counts, k) - 1
        a, (low, high) = self.starts[i], self.rates[i]
        slope = 0.0 if i + 1 >= len(self.starts) else (high - low) / (self.starts[i + 1] - a)
        delta = k - self.counts[i]
        if delta <= 0:
            return a
        # delta = low*tau + slope*tau^2/2, solved in the form that holds for any slope (and low 0)
        return a + 2 * delta / (low + math.sqrt(max(0.0, low * low + 2 * slope * delta)))

    def first(self, t: float) -> int:
        k = max(0, math.ceil(self.count(max(0.0, t)) - 1e-9))
        while k > 0 and self.at(k - 1) >= t:
            k -= 1
        while self.at(k) < t:
            k += 1
        return k
