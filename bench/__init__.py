"""Benchmarks (not tests): each prints JSON figures, comparing alternatives side by side in one run."""
