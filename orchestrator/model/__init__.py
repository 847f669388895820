"""Data only: the spec, the timeline of a run and the verdicts on it. No I/O, no asyncio."""
