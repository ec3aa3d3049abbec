"""jgen as a wheel, not a checkout: `pip install .` ships the recipes, so `--config NAME` works from any
directory (the wheel is built and unpacked here; its dependencies are this environment's)."""

import os
import subprocess
import sys
import zipfile

from helpers import ROOT, TINY, cli_env


def test_the_wheel_trains_a_packaged_recipe_from_an_empty_directory(tmp_path):
    """The built wheel, alone on the path, trains the offline recipe from an empty directory, and a
    newcomer's first lines are right: where the grid will be, that the step is compiling, then the bar
    (whose rate starts after the first step), and no TensorFlow start-up notice (no TF_ variables set)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), ROOT], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").iterdir()
    with zipfile.ZipFile(wheel) as z:
        assert "jgen/configs/ddpm_mnist5k.py" in z.namelist() and "jgen/configs/base.py" in z.namelist()
        z.extractall(tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in cli_env(1).items() if not k.startswith("TF_")}  # the user's environment as is
    env["PYTHONPATH"] = str(tmp_path / "site")  # ahead of the checkout's editable install
    where = subprocess.run([sys.executable, "-c", "import jgen; print(jgen.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "site"))
    args = ["train", "--config", "ddpm_mnist5k", "--workdir", "run"] + [a for t in TINY + ["train.steps=3"]
                                                                         for a in ("--set", t)]
    proc = subprocess.run([sys.executable, "-m", "jgen.cli", *args], cwd=empty, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.exists(empty / "run" / "samples" / "final.png")
    grid = os.path.join("run", "samples", "final.png")
    lines = proc.stdout.splitlines()
    assert lines[0] == f"jgen: 3 steps to go in run; the final grid will be {grid}"
    assert lines[1].startswith("jgen: compiling the training step")
    assert lines[-1] == f"jgen: 3 steps done; samples in {grid}"
    assert "oneDNN" not in proc.stderr and "absl::InitializeLog" not in proc.stderr, proc.stderr[:500]
    assert "1/3" in proc.stderr and "0/3" not in proc.stderr  # the bar starts after the compiled first step


def test_public_surface_loads_lazily():
    """`import jgen` imports no JAX (it stays fast); every name of jgen.__all__ resolves on first use."""
    code = ("import sys, jgen; assert 'jax' not in sys.modules and 'flax' not in sys.modules; "
            "[getattr(jgen, n) for n in jgen.__all__]; "
            "assert jgen.fit.__module__ == 'jgen.run' and jgen.load_config('ddpm_mnist5k').family == 'diffusion'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
