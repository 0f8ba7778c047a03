"""Tiny random models, for tests only (the demo scored table is `score/demo.py`)."""
