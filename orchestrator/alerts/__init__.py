"""Alerts during a drill: Prometheus watched, Alertmanager's notifications received, both timed on the drill's clock."""
