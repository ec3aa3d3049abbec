"""The offline default made class-conditional: classifier-free guidance (Ho & Salimans 2022).

10% of the training labels are replaced by the null label, so one network learns both the
conditional and the unconditional model; sampling mixes them at sample.guidance (2.0 here, Ho &
Salimans' w = 1). `jgen sample --label 3 --guidance 2.0` draws threes.
"""

from jgen.configs import ddpm_mnist5k


def get_config():
    c = ddpm_mnist5k.get_config()
    c.condition.update(kind="class", num_classes=10, drop=0.1)
    c.sample.guidance = 2.0
    return c
