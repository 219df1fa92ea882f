"""The architecture holds: layers, small functions, comments that cite what exists.

Every import of the product is read (ast) and checked:

- A room of ``tuner`` imports only itself and the rooms before it in :data:`LAYERS`.
- ``backends`` and ``search_space`` import only ``tuner.core`` and ``tuner.runtime`` of ``tuner``;
  ``backends`` never imports ``search_space``.
- Outside a package, only its public face is imported: ``backends`` / ``backends.base`` and
  ``search_space`` / ``search_space.base``, never a backend's or a dimension's module.
- No import cycle between files, imports inside functions included.

The checker itself is tested on a small tree with a breach of each kind. Functions in ``tuner``
stay short (:data:`MAX_FUNCTION_LINES`), and the files and modules that comments and docstrings of
the product cite exist.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner", "backends", "search_space")

#: The layers, bottom first: a module may import its own layer and those before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tuner.core",),
    ("tuner.runtime",),
    ("backends", "search_space"),
    ("tuner.workloads",),
    ("tuner.runner",),
    ("tuner.search",),
    ("tuner.tracking",),
    ("tuner.export",),
    ("tuner.api", "tuner"),
)
#: What ``backends`` and ``search_space`` may import of ``tuner``.
TUNER_FOR_PLUGINS = ("tuner.core", "tuner.runtime")
#: Public faces: outside its package, a module of these imports only them.
PUBLIC = {"backends": ("backends", "backends.base"), "search_space": ("search_space", "search_space.base")}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The project modules ``name`` imports (anywhere in the file), with their lines."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield (sub if sub in known else module), node.lineno


def layer_of(module: str) -> int:
    best = -1, 0
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = i, len(prefix)
    return best[0]


def breaches(root: Path) -> list[str]:
    """Every import across a forbidden border, as ``file:line: who imports what (why not)``."""
    modules = project_modules(root)
    known = set(modules)
    out = []
    for name, path in modules.items():
        top = name.split(".")[0]
        for target, line in imports_of(name, path, known):
            why = _forbidden(name, top, target)
            if why:
                out.append(f"{path.relative_to(root)}:{line}: {name} imports {target} ({why})")
    return out


def _forbidden(name: str, top: str, target: str) -> str | None:
    target_top = target.split(".")[0]
    if target_top in PUBLIC and top != target_top and target not in PUBLIC[target_top]:
        return f"outside {target_top}, import only {' or '.join(PUBLIC[target_top])}"
    if top in ("backends", "search_space") and target_top == "tuner":
        if not any(target == p or target.startswith(p + ".") for p in TUNER_FOR_PLUGINS):
            return f"{top} imports only {' and '.join(TUNER_FOR_PLUGINS)} of tuner"
    if top == "backends" and target_top == "search_space":
        return "backends never import the search space"
    if layer_of(target) > layer_of(name):
        return f"a later room ({LAYERS[layer_of(target)][0]}) than its own ({LAYERS[layer_of(name)][0]})"
    return None


def cycles(root: Path) -> list[list[str]]:
    """The import cycles between files (strongly connected components of more than one file, or self-loops)."""
    modules = project_modules(root)
    known = set(modules)
    graph = {n: {t for t, _ in imports_of(n, p, known) if t in known} for n, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_crosses_a_forbidden_border() -> None:
    assert breaches(ROOT) == []


def test_no_import_cycle_between_files() -> None:
    assert cycles(ROOT) == []


def test_every_room_says_what_it_holds_and_may_import() -> None:
    for prefixes in LAYERS:
        for room in prefixes:
            if room.startswith("tuner."):
                init = ROOT / Path(*room.split(".")) / "__init__.py"
                doc = ast.get_docstring(ast.parse(init.read_text()))
                assert doc and "import" in doc.lower(), f"{init} must say what the room holds and what it may import"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for pkg in PACKAGES:
        for folder in [tmp_path / pkg, *(p for p in (tmp_path / pkg).rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
    return tmp_path


CLEAN = {
    "tuner/core/records.py": "import dataclasses\n",
    "tuner/search/study.py": "from tuner.core.records import dataclasses\n",
    "backends/base.py": "from tuner.core import records\n",
    "backends/eager.py": "from backends.base import x\n",
    "search_space/base.py": "import backends\n",
}


@pytest.mark.parametrize(("rel", "line", "why"), [
    ("backends/eager.py", "from tuner.search import study", "backends imports only tuner.core and tuner.runtime"),
    ("backends/eager.py", "def f():\n    import tuner.search.study", "imports only tuner.core"),
    ("search_space/base.py", "from backends import eager", "outside backends, import only"),
    ("backends/eager.py", "import search_space", "never import the search space"),
    ("tuner/core/records.py", "from tuner.search.study import x", "a later room (tuner.search)"),
])
def test_the_checker_finds_each_kind_of_breach(tmp_path: Path, rel: str, line: str, why: str) -> None:
    root = _tree(tmp_path, CLEAN)
    assert breaches(root) == []
    (root / rel).write_text((root / rel).read_text() + line + "\n")
    found = breaches(root)
    assert len(found) == 1 and why in found[0], found


def test_the_checker_finds_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**CLEAN, "tuner/core/records.py": "def f():\n    from tuner.core import defaults\n",
                            "tuner/core/defaults.py": "from tuner.core.records import f\n"})
    assert cycles(root) == [["tuner.core.defaults", "tuner.core.records"]]


#: Longest function body in ``tuner`` (lines, its docstring not counted).
MAX_FUNCTION_LINES = 60
#: A path in the repository, cited in a comment: it starts at one of the repository's folders.
CITED_PATH = re.compile(r"(?<![\w/.-])((?:tuner|backends|search_space|experiments|tests)/[\w./-]*\w)")
#: A module of the project, cited by its dotted name (a quoted one is a string, an MLflow tag say).
CITED_MODULE = re.compile(r"(?<![\w.\"'])((?:tuner|backends|search_space)(?:\.\w+)+)")


def function_lengths(root: Path) -> Iterator[tuple[str, int]]:
    for path in sorted((root / "tuner").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
                yield f"{path.relative_to(root)}:{node.lineno} {node.name}", (node.end_lineno or start) - start + 1


def test_functions_in_tuner_are_short() -> None:
    long = [f"{where} ({n} lines)" for where, n in function_lengths(ROOT) if n > MAX_FUNCTION_LINES]
    assert long == []


def comments_and_docstrings(path: Path) -> Iterator[tuple[int, str]]:
    source = path.read_text()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield (node.body[0].lineno if node.body else 1), doc


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                # A lazily re-exported public name (PEP 562) is cited as the package's own.
                names.update(ast.literal_eval(node.value))
    return names


def _module_exists(root: Path, dotted: str) -> bool:
    """Whether ``dotted`` names a module of the project, or a name defined at the top of one."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:n])
        path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if path.is_file():
            return n == len(parts) or parts[n] in _top_level_names(path)
    return False


def dangling_citations(root: Path) -> list[str]:
    out = []
    for path in (p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))):
        for line, text in comments_and_docstrings(path):
            for cited in CITED_PATH.findall(text):
                if not (root / cited.rstrip(".")).exists():
                    out.append(f"{path.relative_to(root)}:{line}: {cited}")
            for cited in CITED_MODULE.findall(text):
                if not _module_exists(root, cited):
                    out.append(f"{path.relative_to(root)}:{line}: {cited}")
    return out


def test_comments_cite_only_files_and_modules_that_exist() -> None:
    assert dangling_citations(ROOT) == []


def test_the_citation_check_finds_a_missing_file(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**CLEAN, "tuner/core/records.py": "# see tuner/core/gone.py and tuner.core.gone\n"})
    assert dangling_citations(root) == ["tuner/core/records.py:1: tuner/core/gone.py",
                                        "tuner/core/records.py:1: tuner.core.gone"]
