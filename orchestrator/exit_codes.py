"""Exit codes of `drillctl run`, which CI pipelines branch on."""

EXIT_PASSED = 0
EXIT_SLA_FAILED = 1
EXIT_INVALID = 2
EXIT_PREFLIGHT = 3
"""Preflight, baseline or infrastructure failure: nothing was injected."""
EXIT_ABORTED = 4
"""Aborted after injection; everything injected was reverted (or the report says what was not)."""
