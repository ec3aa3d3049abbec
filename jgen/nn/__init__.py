"""jgen.nn."""
