"""jgen: deep image generators in JAX/Flax (diffusion, GANs, VAEs)."""

import os

__version__ = "0.1.0"

# XLA:CPU hands single dots and convolutions to the YNNPACK library by default; its own (Eigen)
# kernels run jgen's training steps faster on CPU: on 2 cores the mnist5k U-Net step takes 106 ms
# against 127, the beta-VAE step 55 ms against 65 (benchmarks/results/cpu2-perf-2026-11-27.md). The flag
# is read when the first backend starts, so it must be in XLA_FLAGS before then; it changes nothing
# on GPUs or TPUs, and a user's own choice of the option wins.
_YNN = "--xla_cpu_experimental_ynn_fusion_type"
if _YNN not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_YNN}=-individual_dot,-individual_convolution").strip()
# XLA:CPU removes optimisation barriers early (its cse_barrier_expander pass); jgen's convolution
# gradients place barriers on CPU so that weight-gradient transposes read stored activations
# (jgen.nn.conv.materialised). Keeping barriers changes no values; a user's own list of disabled
# passes wins.
_PASSES = "--xla_disable_hlo_passes"
if _PASSES not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_PASSES}=cse_barrier_expander").strip()
