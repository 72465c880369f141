"""Benchmarks: `make bench` (python -m bench). They print figures as ratios against baselines
measured in the same run on the same machine; they never pass or fail."""
