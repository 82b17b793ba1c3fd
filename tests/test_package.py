"""The package's shape: imports point one way through the layers the README's layout table lists."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import vitzoo

# The README's layout table, top to bottom: a module may import from its own layer and the ones above it.
LAYERS = ["base", "zoo", "models", "weights", "exporting", "measure", "evaluate", "inspection", "parallel", "train",
          "report",
          "cli"]  # fmt: skip
ROOT = Path(vitzoo.__file__).parent


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


def _imports(path: Path) -> list[str]:
    """Every vitzoo module ``path`` imports, at the top or inside a function."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vitzoo") and not node.level:
            subs = [f"{node.module}.{a.name}" for a in node.names] if node.module == "vitzoo" else [node.module]
            out += subs
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("vitzoo")]
    return out


def test_imports_point_one_way():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(("vitzoo", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        if module in ("vitzoo", "vitzoo.__main__"):  # the public face: lazy names from every layer
            continue
        for target in _imports(path):
            if LAYERS.index(_layer(target)) > LAYERS.index(_layer(module)):
                wrong.append(f"{module} imports {target}")
    assert not wrong, wrong


def test_every_layer_is_a_folder_or_a_base_module():
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS) - {"base"}
    assert sorted(p.name for p in ROOT.glob("*.py")) == [
        "__init__.py", "__main__.py", "dtypes.py", "errors.py", "files.py", "lazy.py", "machine.py", "settings.py",
    ]  # fmt: skip


def test_no_module_is_longer_than_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_list_info_and_the_zoo_import_no_torch():
    """`vitzoo list` / `info` and the zoo (registry, catalogue, closed-form counts) work without importing torch."""
    code = (
        "import sys\n"
        "from vitzoo.cli import main\n"
        "import vitzoo.zoo.analytic, vitzoo.zoo.describe, vitzoo.zoo.lookup, vitzoo.zoo.paper, vitzoo.zoo.preprocess\n"
        "for args in (['list', '--json'], ['info', 'vit-b16', '--json'], ['list', '--all', '--csv']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "assert vitzoo.list_models('vit-b*') == ['vit-b8', 'vit-b16', 'vit-b32']\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", "import vitzoo\n" + code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "False", out.stderr
    assert '"name": "vit-b16"' in out.stdout


def _torch_names(tree: ast.AST) -> list[str]:
    """Every torch module imported and every dotted ``torch.`` name used (``torch.ops.mkldnn``, ``F.linear``)."""
    aliases = {"torch": "torch"}
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "torch":
                    names.append(a.name)
                    aliases[(a.asname or a.name).split(".")[0]] = a.name if a.asname else "torch"
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
            for a in node.names:
                names.append(f"{node.module}.{a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            inner: ast.AST = node
            while isinstance(inner, ast.Attribute):
                parts.insert(0, inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                names.append(".".join([aliases[inner.id], *parts]))
    return names


def test_the_models_use_no_private_torch_api():
    """``models/`` is the reference model in plain PyTorch: no ``torch.ops`` nor ``torch._x`` / ``torch.x._y``
    (private, unversioned API); speed paths that need them live in ``vitzoo.measure.fused``."""
    private = []
    for path in sorted((ROOT / "models").rglob("*.py")):
        for name in _torch_names(ast.parse(path.read_text())):
            if name.startswith("torch.ops") or any(p.startswith("_") for p in name.split(".")):
                private.append(f"{path.name}: {name}")
    assert not private, private


def test_the_private_api_check_sees_what_it_must():
    source = "import torch.utils._python_dispatch\nfrom torch import ops\ny = torch.ops.mkldnn._linear_pointwise(x)\n"
    names = _torch_names(ast.parse(source))
    assert "torch.utils._python_dispatch" in names and "torch.ops" in names
    assert "torch.ops.mkldnn._linear_pointwise" in names


def _module_name(path: Path) -> str:
    return ".".join(("vitzoo", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")


def _import_graph() -> dict[str, set[str]]:
    """module -> the vitzoo modules it imports (at the top or in a function, ``TYPE_CHECKING`` too); ``from
    vitzoo.x import y`` counts as importing ``vitzoo.x.y`` where that is a module, else ``vitzoo.x``."""
    modules = {_module_name(p) for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vitzoo") and not node.level:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    edges.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
        graph[_module_name(path)] = edges & modules - {_module_name(path)}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import circle per strongly connected group of modules (Tarjan), as a path that closes on itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for group in groups:
        start = min(group)
        path, seen = [start], {start}
        while True:  # walk inside the group until a module repeats
            nxt = min(w for w in graph[path[-1]] if w in group)
            if nxt in seen:
                out.append([*path[path.index(nxt) :], nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return out


def test_no_import_circles():
    """No module imports, even lazily inside a function, one that imports it back (directly or around a circle):
    a circle means a concept was split in the wrong place."""
    assert not _cycles(_import_graph()), [" -> ".join(c) for c in _cycles(_import_graph())]


def test_the_circle_check_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert not _cycles({"a": {"b"}, "b": set()})


README = ROOT.parent / "README.md"


def _readme_imports() -> list[tuple[str, list[str]]]:
    """(module, names) of every ``from vitzoo... import ...`` / ``import vitzoo...`` in the README's Python blocks."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    out = []
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vitzoo":
                out.append((node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "vitzoo"]
    return out


def _resolves(dotted: str) -> bool:
    """Whether ``vitzoo.a.b.name`` is a module, or a name that the longest importable module prefix has."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_the_readme_imports_resolve():
    imports = _readme_imports()
    assert len(imports) >= 5  # the parser sees the samples
    broken = [f"from {m} import {n}" for m, names in imports for n in names if not _resolves(f"{m}.{n}")]
    broken += [m for m, names in imports if not names and not _resolves(m)]
    assert not broken, broken


def test_the_readme_names_exist_where_it_says():
    """Every `vitzoo.x.y` the README names in code spans is importable there (a module, or a name in one)."""
    names = set(re.findall(r"`(vitzoo(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\([^`]*\))?`", README.read_text()))
    assert names
    missing = sorted(n for n in names if not _resolves(n))
    assert not missing, missing


def test_every_subpackage_export_resolves_and_the_zoo_stays_torch_free():
    for init in sorted(p for p in ROOT.glob("*/__init__.py") if p.parent.name != "cli"):  # the CLI: commands only
        package = importlib.import_module(_module_name(init))
        assert hasattr(package, "__all__"), package.__name__
        missing = [n for n in package.__all__ if not hasattr(package, n)]
        assert not missing, (package.__name__, missing)
    packages = "vitzoo.zoo, vitzoo.measure, vitzoo.evaluate, vitzoo.weights, vitzoo.train, vitzoo.report"
    code = f"import sys, {packages}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # the exports are imported on use, not with the package
