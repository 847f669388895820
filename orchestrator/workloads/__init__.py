"""Workloads: operations sent to the system under test through clients, their history, and its checker."""
