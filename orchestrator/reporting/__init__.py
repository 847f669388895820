"""Reports: one Report built from a run, rendered as JSON, Markdown and JUnit XML."""
