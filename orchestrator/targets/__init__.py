"""Targets a drill acts on: local processes it starts and supervises."""
