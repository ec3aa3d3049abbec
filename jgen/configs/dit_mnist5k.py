"""A small DiT (Peebles & Xie 2023) in place of the main job's U-Net: class-conditional flow matching on
the offline digits exactly as flow_mnist5k_cfg (velocity target, logit-normal t, 11,000 steps at batch 16,
Adam 1e-3, EMA 0.999, Heun on a uniform grid in t, guidance 1.0), on 7x7 tokens of 4x4 patches, width
128, 6 adaLN-Zero blocks of 4 heads.

4x4 patches, not the paper's 2x2: at 14x14 tokens a step cost about 5x as much on 2 CPU cores (1.29
against 0.27 s a step on one shared core), too slow to train in the main job's wall time. The
measured rows are in docs/results.md (the recipe table)."""

from jgen.configs import flow_mnist5k_cfg


def get_config():
    c = flow_mnist5k_cfg.get_config()
    c.model.update(arch="dit", patch_size=4, hidden=128, depth=6, heads=4)
    return c
