"""jgen: deep image generators in JAX/Flax (diffusion, GANs, VAEs)."""

import os

__version__ = "0.1.0"

# Two XLA:CPU options, read when the first backend starts (so they must be in XLA_FLAGS before then);
# a user's own choice of either option wins, and neither changes any value.
# - YNNPACK takes single dots and convolutions by default; XLA's own (Eigen) kernels run jgen's
#   training steps faster on CPU: on 2 cores the mnist5k U-Net step takes 106 ms against 127, the
#   beta-VAE step 55 ms against 65 (benchmarks/results/cpu2-perf-2026-11-27.md). No effect off CPU.
# - The cse_barrier_expander pass removes optimisation barriers early; jgen's convolution gradients
#   place barriers on CPU so that weight-gradient transposes read stored activations
#   (jgen.nn.conv.materialised).
for _option, _value in (("--xla_cpu_experimental_ynn_fusion_type", "-individual_dot,-individual_convolution"),
                        ("--xla_disable_hlo_passes", "cse_barrier_expander")):
    if _option not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_option}={_value}").strip()
