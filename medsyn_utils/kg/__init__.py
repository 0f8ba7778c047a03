"""The medical knowledge graph: building, queries, pictures and the explorer widget."""
