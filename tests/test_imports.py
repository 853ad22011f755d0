"""The layering of the package: no import cycle in the trainer, and the record formats and
the orchestration free of torch, gymnasium and the trainer (the operator image has none)."""

import ast
import subprocess
import sys
from pathlib import Path

import gsl_k8s

PACKAGE = Path(gsl_k8s.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> list[str]:
    """Every module of `package` (a dotted name under gsl_k8s), itself included."""
    root = PACKAGE.parent.joinpath(*package.split("."))
    return sorted(module_name(p) for p in root.rglob("*.py"))


def imported_names(module: str) -> set[str]:
    """The absolute module names that `module`'s source imports, anywhere in the file."""
    path = PACKAGE.parent.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def dependencies(module: str, universe: set[str]) -> set[str]:
    """The modules of `universe` that importing `module` imports first: the ones it names,
    and their parent packages."""
    found = set()
    for name in imported_names(module):
        parts = name.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & universe
    return found - {module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_under_the_trainer():
    trainer = set(modules("gsl_k8s.trainer"))
    graph = {m: dependencies(m, trainer) for m in trainer}
    assert {"gsl_k8s.trainer.task", "gsl_k8s.trainer.builtin"} <= trainer
    assert "gsl_k8s.trainer.builtin" in graph["gsl_k8s.trainer.task"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_every_trainer_module_imports_first():
    """Each module of gsl_k8s.trainer imported before any other of the package: an import
    cycle shows up as an ImportError of a partly initialised module."""
    code = f"""
import importlib, sys
for name in {modules("gsl_k8s.trainer")!r}:
    for loaded in [m for m in sys.modules if m.startswith("gsl_k8s")]:
        del sys.modules[loaded]
    importlib.import_module(name)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_loop_does_not_import_sample_factory():
    loop = {m for m in modules("gsl_k8s.trainer") if ".sample_factory" not in m}
    for module in loop:
        assert not any(n.startswith("sample_factory") for n in imported_names(module)), module
    # the factory imports the Sample Factory backend only when a spec names it
    code = """
import sys
from gsl_k8s.trainer.task import TaskRunner
assert not [m for m in sys.modules if "sample_factory" in m], sorted(sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_records_orchestration_and_operator_import_no_torch_gymnasium_or_trainer():
    packages = ["gsl_k8s.records", "gsl_k8s.orchestration", "gsl_k8s.backends.kubernetes"]
    names = [m for p in packages for m in modules(p)]
    code = f"""
import importlib, sys
for name in {names!r}:
    importlib.import_module(name)
    bad = [m for m in ("torch", "gymnasium", "gsl_k8s.trainer", "gsl_k8s.envs") if m in sys.modules]
    assert not bad, f"{{name}} imports {{bad}}"
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_records_stand_on_the_store_layout_stdlib_and_numpy_only():
    allowed = ("gsl_k8s.store", "gsl_k8s.layout", "gsl_k8s.records", "numpy", "__future__")
    for module in modules("gsl_k8s.records"):
        for name in imported_names(module):
            top = name.split(".")[0]
            ok = top in sys.stdlib_module_names or name.startswith(allowed)
            assert ok, f"{module} imports {name}"
