"""The paper's figures from any scored table."""
