"""The daemon's engine: reads, reconcile cycles, applying plans, state, lifecycle."""
