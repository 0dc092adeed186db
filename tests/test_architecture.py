"""The house rules, checked on the source itself (no earmark code runs here except in a
fresh subprocess):

- no module reaches into another earmark module's private names (``_name``);
- the deployable parts (``earmark.runtime``, ``earmark.metrics``, the numpy front-end,
  ``earmark.windowing``, ``earmark.calibrate``, the wake-word settings that
  ``earmark configs`` reads) import no torch, however indirectly;
- no function or method is longer than :data:`MAX_FUNCTION_LINES` lines.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "earmark"
BENCHMARKS = REPO / "benchmarks"

#: The longest a function or method may be, ``def`` line to last line, decorators excluded.
MAX_FUNCTION_LINES = 60

#: Packages whose every module (found with pkgutil, so new ones are covered) must not
#: import torch, and single modules with the same rule (checked where they exist).
TORCH_FREE_PACKAGES = ("earmark.runtime", "earmark.metrics")
TORCH_FREE_MODULES = ("earmark.frontend.reference", "earmark.frontend.spectrogram",
                      "earmark.frontend.filters", "earmark.frontend.inversion",
                      "earmark.frontend.micro", "earmark.frontend.speech_embedding",
                      "earmark.frontend.embedding_mel",
                      "earmark.frontend.bird_embedding",
                      "earmark.windowing", "earmark.events", "earmark.levels",
                      "earmark.calibrate", "earmark.wakeword.settings")


# --------------------------------------------------------------------------
# helpers


def source_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py")
                  if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    """``src/earmark/a/b.py`` -> ``earmark.a.b``; a package's ``__init__`` -> the package;
    a file outside src (a benchmark) -> ``benchmarks.name``."""
    base = SRC if path.is_relative_to(SRC) else REPO
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def earmark_modules() -> set[str]:
    return {module_name(path) for path in source_files(PACKAGE)}


def is_private(name: str) -> bool:
    """``_name`` and ``__name`` are private; ``__dunder__`` names are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_earmark(module: str) -> bool:
    return module == "earmark" or module.startswith("earmark.")


def absolute_module(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The module a ``from X import ...`` names, relative imports made absolute."""
    if not node.level:
        return node.module or ""
    package = current.split(".") if is_package else current.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id] + parts[::-1]


def private_imports(path: Path, modules: set[str]) -> list[str]:
    """``file:line imports module._name`` for each private name ``path`` takes from another
    earmark module (see :func:`private_uses`)."""
    return private_uses(path.read_text(encoding="utf-8"), module_name(path),
                        path.name == "__init__.py", str(path.relative_to(REPO)), modules)


def private_uses(source: str, current: str, is_package: bool, where: str,
                 modules: set[str]) -> list[str]:
    """``where:line imports module._name`` for ``from earmark.x import _name`` (relative
    imports too) and for ``x._name`` where ``x`` is bound to an earmark module by ``import``
    or ``from ... import``. ``current`` is the module's own name."""
    tree = ast.parse(source, filename=where)
    found = []
    bound: dict[str, str] = {}       # local name -> the earmark module it stands for

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_earmark(alias.name):
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            source = absolute_module(node, current, is_package)
            if not is_earmark(source):
                continue
            for alias in node.names:
                if is_private(alias.name) and source != current:
                    found.append((getattr(alias, "lineno", node.lineno), f"{source}.{alias.name}"))
                elif f"{source}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
            continue
        chain = dotted(node.value)
        if not chain or chain[0] not in bound:
            continue
        target = ".".join([bound[chain[0]]] + chain[1:])
        if target in modules and target != current:
            found.append((node.lineno, f"{target}.{node.attr}"))
    return [f"{where}:{line} imports {name}" for line, name in sorted(set(found))]


class _FunctionLengths(ast.NodeVisitor):
    def __init__(self, where: str):
        self.where = where
        self.scope: list[str] = []
        self.lengths: list[tuple[str, int]] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node) -> None:
        # lineno is the ``def`` line: decorators are not counted.
        length = node.end_lineno - node.lineno + 1
        name = ".".join(self.scope + [node.name])
        self.lengths.append((f"{self.where}:{node.lineno} {name}", length))
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef


def function_lengths(source: str, where: str) -> list[tuple[str, int]]:
    """``("where:line Class.name", lines)`` for every function and method, nested ones too."""
    visitor = _FunctionLengths(where)
    visitor.visit(ast.parse(source, filename=where))
    return visitor.lengths


def submodules(folder: Path, prefix: str):
    """Every module below a package folder, found with pkgutil without importing any."""
    for info in pkgutil.iter_modules([str(folder)]):
        yield prefix + info.name
        if info.ispkg:
            yield from submodules(folder / info.name, f"{prefix}{info.name}.")


def torch_free_modules() -> list[str]:
    """The modules that must import no torch."""
    names = []
    for package in TORCH_FREE_PACKAGES:
        names.append(package)
        names.extend(submodules(SRC.joinpath(*package.split(".")), f"{package}."))
    present = earmark_modules()
    names.extend(name for name in TORCH_FREE_MODULES if name in present)
    return [name for name in dict.fromkeys(names) if name in present]


#: Run in a fresh interpreter: import each module with torch blocked, and name the
#: earmark frames that asked for it. A finder (rather than ``sys.modules['torch'] = None``)
#: sees every attempt, also those a module catches.
_PROBE = r"""
import importlib, json, sys, traceback

modules = json.loads(sys.argv[1])
current = [None]
attempts = {}

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            frames = [f"{f.filename.split('/src/')[-1]}:{f.lineno}"
                      for f in traceback.extract_stack()
                      if "/earmark/" in f.filename.replace("\\", "/")]
            attempts.setdefault(current[0], frames)
            raise ImportError(f"torch is blocked: {current[0]} imported it")
        return None

sys.meta_path.insert(0, BlockTorch())
for module in modules:
    current[0] = module
    try:
        importlib.import_module(module)
    except ImportError as error:
        attempts.setdefault(module, [f"failed: {error}"])
print(json.dumps({"attempts": attempts, "torch": "torch" in sys.modules}))
"""


# --------------------------------------------------------------------------
# the rules


def test_no_private_names_imported_from_other_earmark_modules():
    modules = earmark_modules()
    offenders = [line for path in source_files(PACKAGE, BENCHMARKS)
                 for line in private_imports(path, modules)]
    assert not offenders, ("private names used across modules (make them public, or "
                           "move the code):\n  " + "\n  ".join(offenders))


def test_runtime_metrics_and_numpy_frontend_import_no_torch():
    modules = torch_free_modules()
    assert {"earmark.runtime", "earmark.runtime.smoother", "earmark.metrics.streaming",
            "earmark.frontend.spectrogram"} <= set(modules)
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(modules)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    offenders = [f"{module} (via {' -> '.join(frames) or '?'})"
                 for module, frames in report["attempts"].items()]
    assert not offenders and not report["torch"], (
        "these modules import torch:\n  " + "\n  ".join(offenders))


def test_no_function_is_longer_than_the_limit():
    offenders = [f"{name} is {length} lines"
                 for path in source_files(PACKAGE)
                 for name, length in function_lengths(path.read_text(encoding="utf-8"),
                                                      str(path.relative_to(REPO)))
                 if length > MAX_FUNCTION_LINES]
    assert not offenders, (f"functions longer than {MAX_FUNCTION_LINES} lines (split them):"
                           "\n  " + "\n  ".join(offenders))


# --------------------------------------------------------------------------
# the checkers themselves


def _check(code: str) -> list[str]:
    """:func:`private_uses` on a snippet posing as a module of src/earmark."""
    return private_uses(code, "earmark.probe.mod", False, "src/earmark/probe/mod.py",
                        earmark_modules())


def test_private_import_checker_finds_each_form():
    found = _check("from earmark.config import _build, to_dict\n"
                   "from earmark.config import (\n    from_dict,\n    _coerce,\n)\n"
                   "from .. import __version__\n"
                   "from ..config import _SECTIONS\n"
                   "import earmark.config\n"
                   "import earmark.config as cfg\n"
                   "from earmark import config\n"
                   "from earmark.probe.mod import _mine\n"
                   "earmark.config._reject_unknown\n"
                   "cfg._build\n"
                   "config._coerce\n"
                   "self._private, cfg.__doc__, cfg.to_dict\n")
    assert found == [
        "src/earmark/probe/mod.py:1 imports earmark.config._build",
        "src/earmark/probe/mod.py:4 imports earmark.config._coerce",
        "src/earmark/probe/mod.py:7 imports earmark.config._SECTIONS",
        "src/earmark/probe/mod.py:12 imports earmark.config._reject_unknown",
        "src/earmark/probe/mod.py:13 imports earmark.config._build",
        "src/earmark/probe/mod.py:14 imports earmark.config._coerce"]


def test_function_length_checker_skips_decorators():
    code = ("@decorator\n@another(1)\ndef f():\n    a = 1\n    return a\n\n\n"
            "class C:\n    async def g(self):\n        def inner():\n            pass\n")
    assert function_lengths(code, "x.py") == [("x.py:3 f", 3), ("x.py:9 C.g", 3),
                                              ("x.py:10 C.g.inner", 2)]
