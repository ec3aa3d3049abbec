"""jgen.diffusion."""
