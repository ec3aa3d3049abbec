"""The documentation cannot drift from the code: the site builds with `mkdocs build --strict` (a broken
link, a missing page or a bad API reference fails), every object the API page lists has a docstring,
and every Python block of every page (the tutorials, the README) runs as written, in a fresh process
in an empty directory, top to bottom."""

import importlib
import inspect
import os
import re
import subprocess
import sys

import textwrap

import pytest

from helpers import ROOT

DOCS = os.path.join(ROOT, "docs")
# a fenced Python block, indented (inside a list) or not, ``` or ~~~, "python" or "py", with or without a title
PYTHON_BLOCK = re.compile(r"^([ \t]*)(```|~~~)[ \t]*(?:python|py)\b[^\n]*\n(.*?)^\1\2[ \t]*$", re.S | re.M)
PYTHON_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[ \t]*(?:python|py)\b", re.M)


def pages():
    found = [os.path.join(ROOT, "README.md")]
    for folder, _, names in os.walk(DOCS):
        found += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".md")]
    return sorted(found)


def code_of(path: str) -> str:
    """The page's Python blocks in order, dedented, joined into one script; every opening fence must have
    given a block (an unclosed or oddly closed one would otherwise drop out unrun)."""
    text = open(path).read()
    blocks = [textwrap.dedent(body) for _, _, body in PYTHON_BLOCK.findall(text)]
    assert len(blocks) == len(PYTHON_FENCE.findall(text)), f"{path}: a Python block that does not close"
    return "\n".join(blocks)


RUNNABLE = [p for p in pages() if code_of(p)]


def test_the_block_finder_sees_every_kind_of_fence(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("a\n```python\nx = 1\n```\n- item\n\n    ```py title=\"t.py\"\n    y = x + 1\n    ```\n"
                    "~~~python\nz = y\n~~~\n```bash\nls\n```\n")
    assert code_of(str(page)).split() == ["x", "=", "1", "y", "=", "x", "+", "1", "z", "=", "y"]


def test_the_tutorials_have_code_to_run():
    names = {os.path.relpath(p, ROOT) for p in RUNNABLE}
    assert {"docs/tutorials/own_network.md", "docs/tutorials/train_in_python.md", "docs/tutorials/new_family.md",
            "docs/tutorials/evaluate_npz.md", "README.md"} <= names


# evaluate_npz.md trains a classifier and scores 1,000 digits: a long check (its functions are jgen eval's,
# which the evaluation tests cover)
LONG_PAGES = ("docs/tutorials/evaluate_npz.md",)


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.long) if os.path.relpath(p, ROOT) in LONG_PAGES
                                  else p for p in RUNNABLE], ids=lambda p: os.path.relpath(p, ROOT))
def test_every_python_block_runs(page, tmp_path):
    script = tmp_path / "page.py"
    script.write_text(code_of(page))
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{os.path.relpath(page, ROOT)} failed:\n{done.stderr[-3000:]}"


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[docs]') builds the site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "tutorials" / "new_family" / "index.html").exists()


def test_every_api_object_has_a_docstring():
    """Each `::: module` block of docs/api.md with its `members: [...]` list: every member exists and
    says what it is (mkdocstrings would render an empty entry without complaint)."""
    text = open(os.path.join(DOCS, "api.md")).read()
    blocks = re.findall(r"^::: ([\w.]+)\n    options:\n      members: \[([^\]]*)\]", text, re.M)
    assert len(blocks) == text.count("\n::: ") and blocks
    missing = []
    for module_name, members in blocks:
        module = importlib.import_module(module_name)
        assert inspect.getdoc(module), module_name
        for name in (m.strip() for m in members.split(",")):
            obj = getattr(module, name, None)
            # its own docstring: not inherited, and not the signature a dataclass writes when it has none
            doc = (obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)) or ""
            if obj is None or not doc.strip() or doc.startswith(f"{name}("):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"no docstring: {missing}"
