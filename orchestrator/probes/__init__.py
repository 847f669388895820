"""Probes observe steady state. An unhealthy target is an observation (ok=False), never an exception."""
