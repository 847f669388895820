"""Game days: a suite of drills run in order under one lease, with one report for all of them."""
