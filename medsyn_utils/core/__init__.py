"""Shared mechanics: errors, paths, the data registry, corpus readers, ICD codes, schemas, provenance."""
