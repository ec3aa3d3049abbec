"""jgen.data."""
