"""`drillctl serve`: the runs, game days and trends as pages, and a running drill live over server-sent events."""
