"""The architecture's rules, checked on the source: no import cycles inside paddlepalm (counting
imports inside functions too), and tests and benchmarks use paddlepalm's public API only (no
``_private`` attribute of a paddlepalm object, no ``_private`` name imported from paddlepalm),
but for the exceptions listed here with their reasons."""
import ast
import os
from typing import Dict, Iterator, List, Set, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "paddlepalm")

# (file, private name): why a test or bench needs it
EXCEPTIONS = {
    ("tests/reliability/resume_job.py", "_exchange"):
        "forces the two-rename fallback of the atomic directory swap, to kill the process between the renames",
    ("tests/test_rotation.py", "_saver"):
        "one save outside training, to see rotation keep the old checkpoints when the new one does not verify",
    ("tests/test_rotation.py", "_checkpoint_state"): "the same save's trainer state",
}


def python_files(root: str) -> Iterator[str]:
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def module_name(path: str) -> str:
    name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the paddlepalm modules it imports, anywhere in its body."""
    modules = {module_name(p): p for p in python_files(PACKAGE)}

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: Dict[str, Set[str]] = {}
    for module, path in modules.items():
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        deps: Set[str] = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Import):
                deps.update(resolve(a.name) for a in node.names if a.name.startswith("paddlepalm"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base.startswith("paddlepalm"):
                    deps.update(resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in modules else resolve(base)
                                for a in node.names)
        graph[module] = {d for d in deps if d and d != module}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

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
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_paddlepalm_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def private_names() -> Set[str]:
    """Every ``_name`` paddlepalm defines: functions, classes, module names, ``self._x`` attributes."""
    names: Set[str] = set()
    for path in python_files(PACKAGE):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_uses(source: str, private: Set[str]) -> Iterator[Tuple[int, str]]:
    """``(line, name)`` of each ``x._name`` (x not ``self``/``cls``) with a paddlepalm private name,
    and of each private name imported from paddlepalm."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                yield node.lineno, node.attr
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paddlepalm"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield node.lineno, alias.name


def test_tests_and_benchmarks_use_the_public_api():
    private = private_names()
    found = []
    for folder in ("tests", "bench"):
        for path in python_files(os.path.join(REPO, folder)):
            relative = os.path.relpath(path, REPO).replace(os.sep, "/")
            for line, name in private_uses(open(path, encoding="utf-8").read(), private):
                if (relative, name) not in EXCEPTIONS:
                    found.append(f"{relative}:{line}: {name}")
    assert found == [], "private paddlepalm names used (make them public, or list the reason in EXCEPTIONS)"


def test_the_private_use_finder_finds_uses():
    source = "import x\nfrom paddlepalm.engine import _hidden\ntrainer._plan.updates = 1\nself._plan = 2\n"
    assert sorted(private_uses(source, {"_plan", "_hidden"})) == [(2, "_hidden"), (3, "_plan")]
