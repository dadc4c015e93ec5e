"""Command-line utilities: evaluation, training, synthetic data, benchmarks."""
