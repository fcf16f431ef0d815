"""The rules of docs/architecture.md, checked on the source: a module that breaks one fails
here, naming the module, the line and what it did.

* Layers: a package imports only packages below it in ``LAYERS`` (imports under ``if
  TYPE_CHECKING:`` are for annotations and are free).  Imports inside functions count:
  a lazy import is still a dependency.
* Only the command line imports the command line.
* No process-wide mutable state: no ``global`` statement, and no module- or class-level
  name bound to a mutable container (dict, list, set, a lock, a thread-local ...).
  Constants are immutable: tuples, frozensets, ``MappingProxyType`` over a dict.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ociforge"

# Lowest first: a module may import its own layer and the layers before it.
LAYERS = ("errors", "fsutil", "display", "threads", "model", "options", "progress", "layers",
          "remote", "cache", "stores", "trust", "pipeline", "app", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}

# ``python -m ociforge`` is the command line's entry point.
LAYER_OF_MODULE = {"ociforge.__main__": "cli"}

# What the root package (the lazy public API, ociforge/__init__.py) may give a module
# below it at run time: it imports no module of ours itself, so this creates no cycle.
FROM_ROOT = {"__version__"}

# Calls whose result is mutable: bound at module or class level they are state that
# every run of the process shares.  Not in this list, and allowed: a ContextVar (its value
# belongs to the running context, not the process), a logger (logging is configured by
# the program), and the root package's __getattr__ keeping the public names it imported.
MUTABLE_CALLS = {
    "dict", "list", "set", "bytearray", "dict.fromkeys", "defaultdict", "OrderedDict",
    "Counter", "deque", "collections.defaultdict", "collections.OrderedDict",
    "collections.Counter", "collections.deque", "Lock", "RLock", "threading.Lock",
    "threading.RLock", "threading.local", "threading.Event", "threading.Condition",
    "threading.Semaphore", "threading.BoundedSemaphore", "queue.Queue", "WeakValueDictionary",
    "WeakKeyDictionary", "WeakSet", "weakref.WeakValueDictionary",
    "weakref.WeakKeyDictionary", "weakref.WeakSet",
}
MUTABLE_NODES = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)

# The one module that keeps process state, because the thing it manages is the
# process's: the scratch folder of built blobs, made on first use, removed at exit,
# made afresh in a forked child (its lock dies with the process, however it dies).
PROCESS_STATE = {"ociforge.layers.workspace"}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]

    @property
    def shown(self) -> str:
        return str(self.path.relative_to(ROOT))


def modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append(Module(name, path, ast.parse(path.read_text(), str(path))))
    return found


def layer_of(module_name: str) -> str | None:
    """The layer of ``ociforge.X...`` (None for the root package itself)."""
    if module_name in LAYER_OF_MODULE:
        return LAYER_OF_MODULE[module_name]
    parts = module_name.split(".")
    return parts[1] if len(parts) > 1 else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` that runs, sooner or later: all but ``if TYPE_CHECKING:``
    bodies (their ``else`` runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from runtime_nodes(other)
            continue
        yield child
        yield from runtime_nodes(child)


def imported(module: Module) -> Iterator[tuple[int, str, str | None]]:
    """(line, module imported, name taken from it) for every run-time import of ours."""
    for node in runtime_nodes(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "ociforge" or alias.name.startswith("ociforge."):
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != "ociforge" and not target.startswith("ociforge."):
                continue
            for alias in node.names:
                yield node.lineno, target, alias.name


def import_targets(module: Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every run-time import, ``from PACKAGE import submodule`` as the
    submodule; a name taken from the root package as ``ociforge:NAME``."""
    for line, target, name in imported(module):
        folder = PACKAGE.parent / target.replace(".", "/")
        is_module = name is not None and (
            (folder / name).is_dir() or (folder / f"{name}.py").is_file())
        if is_module:
            yield line, f"{target}.{name}"
        elif target == "ociforge" and name is not None:
            yield line, f"ociforge:{name}"
        else:
            yield line, target


def test_every_package_has_a_layer() -> None:
    """A new top-level module or package must be given its place in LAYERS (and in
    docs/architecture.md)."""
    tops = {path.stem for path in PACKAGE.glob("*.py")} | {
        path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    unplaced = sorted(tops - set(RANK) - {"__init__", "__main__"})
    assert not unplaced, f"not in LAYERS (tests/test_architecture.py): {unplaced}"


def test_the_architecture_document_lists_the_layers_in_order() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("Layers, lowest first:"))
    named = [word.strip("`,.") for word in line.split(":", 1)[1].split()
             if word.strip("`,.") and word != "<"]
    assert tuple(named) == LAYERS, line


def test_no_package_imports_a_package_above_it() -> None:
    wrong = []
    for module in modules():
        mine = layer_of(module.name)
        if mine is None:
            continue
        for line, target in import_targets(module):
            if target.startswith("ociforge:"):
                if target.partition(":")[2] not in FROM_ROOT:
                    wrong.append(f"{module.shown}:{line}: {module.name} takes "
                                 f"{target.partition(':')[2]} from the root package")
                continue
            theirs = layer_of(target)
            if theirs is None or theirs == mine:
                continue
            if theirs not in RANK:
                wrong.append(f"{module.shown}:{line}: {target} is in no layer")
            elif RANK[theirs] > RANK[mine]:
                wrong.append(f"{module.shown}:{line}: {module.name} ({mine}) imports {target} "
                             f"({theirs}, a higher layer)")
    assert not wrong, "imports against the layers (docs/architecture.md):\n" + "\n".join(wrong)


def test_the_root_package_imports_nothing_of_ours_when_imported() -> None:
    """``import ociforge`` stays cheap: public names load on first use (types come from the
    TYPE_CHECKING imports)."""
    root = next(m for m in modules() if m.name == "ociforge")
    in_functions = {getattr(node, "lineno", 0) for function in ast.walk(root.tree)
                    if isinstance(function, ast.FunctionDef) for node in ast.walk(function)}
    eager = [f"{root.shown}:{line}: {target}" for line, target, _ in imported(root)
             if line not in in_functions]
    assert not eager, eager


def test_only_the_command_line_imports_the_command_line() -> None:
    wrong = [f"{module.shown}:{line}: {module.name} imports {target}"
             for module in modules() if layer_of(module.name) != "cli"
             for line, target in import_targets(module)
             if target == "ociforge.cli" or target.startswith("ociforge.cli.")]
    assert not wrong, "\n".join(wrong)


def _bindings(body: list[ast.stmt]) -> Iterator[tuple[ast.stmt, list[str], ast.expr]]:
    """(statement, names, value) of the assignments that run when a module is imported or
    a class is created (inside top-level if/try/with blocks too)."""
    for node in body:
        if isinstance(node, ast.Assign):
            names = [ast.unparse(t) for t in node.targets]
            yield node, names, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            yield node, [ast.unparse(node.target)], node.value
        elif isinstance(node, ast.If | ast.With):
            yield from _bindings(node.body)
            if isinstance(node, ast.If):
                yield from _bindings(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(handler.body for handler in node.handlers)):
                yield from _bindings(block)


def mutable(value: ast.expr) -> bool:
    if isinstance(value, MUTABLE_NODES):
        return True
    return isinstance(value, ast.Call) and ast.unparse(value.func) in MUTABLE_CALLS


def test_no_process_wide_mutable_state() -> None:
    """State belongs to an object the caller holds (Options, a plan, a client), so two runs
    in one process (tests, a server using the library) never see each other's."""
    wrong = []
    for module in modules():
        if module.name in PROCESS_STATE:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Global):
                wrong.append(f"{module.shown}:{node.lineno}: global {', '.join(node.names)}")
        scopes: list[tuple[str, list[ast.stmt]]] = [("", module.tree.body)]
        scopes += [(f"{node.name}.", node.body) for node in ast.walk(module.tree)
                   if isinstance(node, ast.ClassDef)]
        for prefix, body in scopes:
            for node, names, value in _bindings(body):
                if names == ["__all__"]:
                    continue  # read by tools; a list by convention
                if mutable(value):
                    wrong.append(f"{module.shown}:{node.lineno}: {prefix}{', '.join(names)} = "
                                 f"{ast.unparse(value)[:40]}")
    assert not wrong, ("module-level mutable state (make it a tuple, frozenset or "
                       "MappingProxyType, or state of an object passed down):\n"
                       + "\n".join(wrong))


def _checker_sees(source: str) -> list[str]:
    """What the import checker reports for one made-up module ``ociforge.model.x``."""
    module = Module("ociforge.model.x", PACKAGE / "model" / "x.py", ast.parse(source))
    return [target for _, target in import_targets(module)]


def test_the_checker_can_fail() -> None:
    """The checks above see what they must: a lazy import, a relative one, a submodule
    taken from its package; not an annotation-only one; and a mutable binding."""
    assert _checker_sees("def f():\n    from ..options import Options\n") == \
        ["ociforge.options"]
    assert _checker_sees("from .. import cache\n") == ["ociforge.cache"]
    assert _checker_sees("from ..stores import layout\n") == ["ociforge.stores.layout"]
    assert _checker_sees("from .. import __version__\n") == ["ociforge:__version__"]
    assert _checker_sees("if TYPE_CHECKING:\n    from ..app import spec\nelse:\n"
                         "    import ociforge.trust\n") == ["ociforge.trust"]
    found = [names for _, names, value in _bindings(ast.parse(
        "A = {}\nB: list[int] = []\ntry:\n    C = set()\nexcept E:\n    pass\n"
        "D = frozenset({1})\nE = MappingProxyType({})\nF = threading.local()\n").body)
        if mutable(value)]
    assert found == [["A"], ["B"], ["C"], ["F"]]
