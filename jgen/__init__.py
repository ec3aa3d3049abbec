"""jgen: deep image generators in JAX/Flax (diffusion, GANs, VAEs).

Importing jgen, or any of its modules, changes nothing in the process: no environment variable, no
JAX option, no allocator setting. The CPU host tuning the command line and the benchmarks apply
lives in `jgen.host.configure()`.
"""

__version__ = "0.1.0"
