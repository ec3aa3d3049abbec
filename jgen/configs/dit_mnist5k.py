"""A small DiT (Peebles & Xie 2023) in place of the main job's U-Net: class-conditional flow matching on
the offline digits exactly as flow_mnist5k_cfg (velocity target, logit-normal t, 11,000 steps at batch 16,
Adam 1e-3, EMA 0.999, Heun on a uniform grid in t, guidance 1.0), on 7x7 tokens of 4x4 patches, width
128, 6 adaLN-Zero blocks of 4 heads.

4x4 patches, not the paper's 2x2: at 14x14 tokens a step cost about 5x as much (1.29 against 0.27 s on
one core shared with another run), too slow to train in the main job's wall time on 2 CPU cores.
Measured with benchmarks/recipes.py (2026-12-07, classifier floor 23.3): 1.19x and 1.33x the floor on
seeds 0 and 1, 0.881 and 0.883 called with p >= 0.9, trained at 6.6-7.0 steps/s on one core while
another run held the other (docs/results.md)."""

from jgen.configs import flow_mnist5k_cfg


def get_config():
    c = flow_mnist5k_cfg.get_config()
    c.model.update(arch="dit", patch_size=4, hidden=128, depth=6, heads=4)
    return c
