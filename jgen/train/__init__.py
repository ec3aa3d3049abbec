"""jgen.train."""
