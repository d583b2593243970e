"""Benchmarks (not tests): each prints JSON figures, alternatives side by side in one run."""
