"""Kubernetes: cluster access, target selection, blast radius."""
