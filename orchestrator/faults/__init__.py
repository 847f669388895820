"""Fault drivers, one module per family, behind the interface in `base`."""
