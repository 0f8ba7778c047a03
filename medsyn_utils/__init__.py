"""MedSyn kit: synthetic Russian clinical notes."""
__version__ = "0.1.0"
