"""The spine's layering, read from the source with `ast` (no module is imported): data flows one way,
so a module imports only from its own layer or below, never in a cycle, wherever the import sits
(top of the file or inside a function)."""

import ast
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jgen")

# lowest first; a module belongs to the first prefix it starts with
LAYERS = [
    ("jgen.errors", "jgen.files", "jgen.config", "jgen.configs", "jgen.images", "jgen.sharding", "jgen.host"),
    ("jgen.nn", "jgen.data", "jgen.diffusion", "jgen.interpolate"),
    ("jgen.families",),
    ("jgen.train", "jgen.eval"),
    ("jgen.run", "jgen.latent"),
    ("jgen.applications",),
    ("jgen.cli", "jgen.cli_args"),
]
# same layer, but neither may know the other: evaluation never loads the trainer, and the reverse
APART = [("jgen.train", "jgen.eval")]


def modules() -> dict:
    out = {}
    for root, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                name = "jgen" + path[len(ROOT):-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def imports(path: str, mods: dict) -> set:
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != "jgen":
                found.add(name)
    return found


def layer(name: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def graph() -> dict:
    mods = modules()
    return {m: imports(p, mods) - {m} for m, p in mods.items() if m != "jgen"}


def test_every_import_points_down_or_sideways():
    upward = [f"{a} -> {b}" for a, deps in graph().items() for b in deps if layer(b) > layer(a)]
    assert not upward, upward


def test_evaluation_and_families_never_load_the_trainer():
    def under(name, prefix):
        return name == prefix or name.startswith(prefix + ".")
    g = graph()
    bad = [f"{a} -> {b}" for a, deps in g.items() for b in deps
           if (under(a, "jgen.eval") or under(a, "jgen.families")) and under(b, "jgen.train")]
    bad += [f"{a} -> {b}" for x, y in APART for a, deps in g.items() for b in deps
            if (under(a, x) and under(b, y)) or (under(a, y) and under(b, x))]
    assert not bad, bad


def test_no_import_cycles():
    g, state, cycles = graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_checker_sees_an_upward_import(tmp_path):
    """The test itself can fail: an eval module importing the loop is caught."""
    mods = {"jgen.eval.x": str(tmp_path / "x.py"), "jgen.train.loop": "", "jgen.train": ""}
    (tmp_path / "x.py").write_text("def f():\n    from jgen.train.loop import train_loop\n")
    assert imports(mods["jgen.eval.x"], mods) == {"jgen.train.loop"}
    assert layer("jgen.eval.x") == layer("jgen.train.loop") and layer("jgen.run") > layer("jgen.train.loop")
