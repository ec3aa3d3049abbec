"""jgen's recipes: `base.py` holds every section and default of each family; each recipe file is
`base.get_config(family)` plus the keys it changes (or another recipe plus its changes).

The recipes live in the package, not only in the checkout's configs/, so that there is one source
of truth that `pip install .` ships: `--config ddpm_mnist5k` names a packaged recipe from any
directory, while the top-level configs/*.py are one-line files importing these, so
`--config configs/ddpm_mnist5k.py` keeps working from a checkout. rules.py says which values each
key accepts (jgen.config.check).
"""

import os
import pkgutil

# every module in this folder but base.py, rules.py and reference.py is a recipe
RECIPES = tuple(sorted(m.name for m in pkgutil.iter_modules([os.path.dirname(__file__)])
                       if m.name not in ("base", "rules", "reference")))
