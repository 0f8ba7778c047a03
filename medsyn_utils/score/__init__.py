"""BERTScore scoring: the one-pass scorer, calibration, the filter, per-note quality checks."""
