"""jgen: deep image generators in JAX/Flax (diffusion, GANs, VAEs)."""

__version__ = "0.1.0"
