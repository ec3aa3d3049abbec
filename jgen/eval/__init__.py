"""jgen.eval."""
