"""drillctl: chaos and failover drills that prove recovery within an SLA."""

__version__ = "0.1.0"
