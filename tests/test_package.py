"""jgen as a wheel, not a checkout: `pip install .` ships the recipes, so `--config NAME` works from any
directory (the wheel is built and unpacked here; its dependencies are this environment's)."""

import os
import subprocess
import sys
import zipfile

from helpers import ROOT, TINY, cli_env


def test_the_wheel_trains_a_packaged_recipe_from_an_empty_directory(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), ROOT], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").iterdir()
    with zipfile.ZipFile(wheel) as z:
        assert "jgen/configs/ddpm_mnist5k.py" in z.namelist() and "jgen/configs/base.py" in z.namelist()
        z.extractall(tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(cli_env(1), PYTHONPATH=str(tmp_path / "site"))  # ahead of the checkout's editable install
    where = subprocess.run([sys.executable, "-c", "import jgen; print(jgen.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "site"))
    args = ["train", "--config", "ddpm_mnist5k", "--workdir", "run"] + [a for t in TINY + ["train.steps=3"]
                                                                         for a in ("--set", t)]
    proc = subprocess.run([sys.executable, "-m", "jgen.cli", *args], cwd=empty, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.exists(empty / "run" / "samples" / "final.png")


def test_public_surface_loads_lazily():
    """`import jgen` imports no JAX (it stays fast); every name of jgen.__all__ resolves on first use."""
    code = ("import sys, jgen; assert 'jax' not in sys.modules and 'flax' not in sys.modules; "
            "[getattr(jgen, n) for n in jgen.__all__]; "
            "assert jgen.fit.__module__ == 'jgen.run' and jgen.load_config('ddpm_mnist5k').family == 'diffusion'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
