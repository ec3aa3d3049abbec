"""jgen: deep image generators in JAX/Flax (diffusion and flow, GANs, VAEs, latent models).

Importing jgen, or any of its modules, changes nothing in the process: no environment variable, no
JAX option, no allocator setting. The CPU host tuning the command line and the benchmarks apply
lives in `jgen.host.configure()`.

The public surface, loaded on first use (`import jgen` itself imports neither JAX nor Flax):

  jgen.load_config, jgen.apply_overrides, jgen.check   recipes and overrides (jgen.config)
  jgen.fit, jgen.open_run, jgen.Run                    train a config in a workdir (jgen.run.train; the name
                                                       jgen.train is the trainer's package); open a run
  jgen.Cond, jgen.get_family                           conditions; the family modules (jgen.families)
  jgen.JgenError                                       what a bad config, path or input raises (the CLI's one line)
  jgen.process, jgen.samplers                          x_t = alpha x_0 + sigma eps and the samplers,
                                                       functions of any model_fn(x_t, t) -> (x0, eps)
  jgen.metrics, jgen.evaluate                          FID, KID, IS, precision/recall; the evaluator
"""

import importlib

__version__ = "0.1.0"

_NAMES = {"load_config": "jgen.config", "apply_overrides": "jgen.config", "check": "jgen.config",
          "fit": "jgen.run", "open_run": "jgen.run", "Run": "jgen.run", "Cond": "jgen.families.base",
          "get_family": "jgen.families", "JgenError": "jgen.errors"}
_MODULES = {"process": "jgen.diffusion.process", "samplers": "jgen.diffusion.samplers",
            "metrics": "jgen.eval.metrics", "evaluate": "jgen.eval.evaluate"}
__all__ = sorted(_NAMES) + sorted(_MODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), "train" if name == "fit" else name)
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'jgen' has no attribute '{name}'")


def __dir__():
    return __all__
