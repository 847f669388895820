"""Long runs in report.json and report.html: samples downsampled into buckets per probe.

Pure. Below INLINE_SAMPLES, report.json holds every sample and the chart draws each one. Above
it, an hour at 1,000 samples/s would make report.json hundreds of megabytes and the chart millions
of SVG elements: both keep per-bucket figures instead (sample and failure counts, lowest, p99 and
highest latency of passing samples, the first failure with its error), with a bucket width chosen
so a chart has at most CHART_BUCKETS points per probe, and every sample stays in samples.bin.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence

from orchestrator.analysis import percentile
from orchestrator.model.timeline import Bucket, Sample, SampleLog, SampleSeries, Timeline

INLINE_SAMPLES = 50_000
"""Most samples report.json holds one by one (a few MB); past that it holds a SampleSeries."""
CHART_BUCKETS = 1000
"""Most buckets per probe: about one per pixel column of a chart."""


def is_long(timeline: Timeline) -> bool:
    return len(timeline.samples) > INLINE_SAMPLES


def bucket_width(span: float, interval: float) -> float:
    """The smallest 1-2-5 step, at least one interval, that covers `span` in CHART_BUCKETS buckets."""
    raw = max(span / CHART_BUCKETS, interval)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


class _Acc:
    __slots__ = ("error", "failed_at", "failures", "latencies", "samples")

    def __init__(self) -> None:
        self.samples = 0
        self.failures = 0
        self.latencies = array("d")
        self.failed_at: float | None = None
        self.error: str | None = None


def _rows(samples: Sequence[Sample]) -> Iterator[tuple[str, float, bool, float, str | None]]:
    """(probe, at, ok, latency or NaN, error) of each sample; from a SampleLog's columns, no Sample made."""
    if isinstance(samples, SampleLog):
        names, errors = samples.probes, samples.errors
        for p, at, ok, latency, e in zip(
            samples.probe, samples.at, samples.ok, samples.latency, samples.error, strict=True
        ):
            yield names[p], at, bool(ok), latency, errors[e] if e else None
    else:
        for s in samples:
            yield s.probe, s.at, s.ok, math.nan if s.latency is None else s.latency, s.error


def summarize(timeline: Timeline) -> SampleSeries:
    """Buckets of every probe, in probe then time order. Memory: 8 bytes per passing sample, one bucket
    sorted at a time."""
    until = max(_ats(timeline.samples), default=0.0)
    width = bucket_width(max(until, timeline.end), timeline.interval)
    acc: dict[tuple[str, int], _Acc] = {}
    for probe, at, ok, latency, error in _rows(timeline.samples):
        key = (probe, int(at / width))
        bucket = acc.get(key)
        if bucket is None:
            bucket = acc[key] = _Acc()
        bucket.samples += 1
        if ok:
            if not math.isnan(latency):
                bucket.latencies.append(latency)
        else:
            bucket.failures += 1
            if bucket.failed_at is None or at < bucket.failed_at:
                bucket.failed_at, bucket.error = at, error
    order = {p: i for i, p in enumerate(timeline.probes)}
    buckets = []
    for (probe, k), a in sorted(acc.items(), key=lambda item: (order.get(item[0][0], len(order)), item[0])):
        lat = sorted(a.latencies)
        buckets.append(
            Bucket(
                probe=probe,
                start=round(k * width, 9),
                samples=a.samples,
                failures=a.failures,
                min=_us(lat[0] if lat else None),
                p99=_us(percentile(lat, 99)),
                max=_us(lat[-1] if lat else None),
                failed_at=_us(a.failed_at),
                error=a.error,
            )
        )
    return SampleSeries(width=width, samples=len(timeline.samples), until=round(until, 6), buckets=tuple(buckets))


def _us(value: float | None) -> float | None:
    """To the microsecond, as report.json keeps samples: a report re-rendered from it draws the same."""
    return None if value is None else round(value, 6)


def _ats(samples: Sequence[Sample]) -> Iterator[float]:
    return iter(samples.at) if isinstance(samples, SampleLog) else (s.at for s in samples)
