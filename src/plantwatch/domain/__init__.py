"""Pure domain logic: thresholds, scoring decisions, the simulated plant (numpy yes, no I/O)."""
