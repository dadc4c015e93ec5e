"""The import layers of the project (docs/DESIGN.md, *Layers*), read from the source.

    0 base     realtime.common            records and errors; imports no project module
    1 math     engines, calibration       flow and features, the model, post-processing
    2 runtime  realtime (the rest)        the streaming runtime, lgnm-live, the demo generator
    3 tools    tools                      CLIs, benchmarks, training
    (tests sit on top and may import anything)

A module imports only its own layer or lower ones; every import counts, also one inside
a function (a lazy import is still a dependency). Nothing outside tests/ imports a test
helper (`media`, `rtsp_server`, ... put on sys.path), nothing inside the project imports
the old paths kept for users (`realtime.types`, `realtime.errors`), and the project's
import graph has no cycle. The rule functions are checked on planted bad imports too, so
the test can fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "engines", "calibration", "tools")
# (prefix, layer), most specific prefix first.
LAYERS: tuple[tuple[str, int], ...] = (
    ("realtime.common", 0),
    ("engines", 1),
    ("calibration", 1),
    ("realtime", 2),
    ("tools", 3),
)
LAYER_NAMES = ("base", "math", "runtime", "tools")
USER_SHIMS = frozenset({"realtime.types", "realtime.errors"})  # kept for users' code only
TEST_HELPERS = frozenset(p.stem for p in (ROOT / "tests").glob("*.py")) | {"tests"}


def layer_of(module: str) -> int | None:
    """The layer of a project module (None: not a project module)."""
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported_names(module: str, source: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of everything `source` imports, at any depth (functions,
    branches); `from a import b` gives `a.b` (a submodule or a name in `a`), relative
    imports are resolved against `module`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}" if base else alias.name) for alias in node.names]
    return found


def resolve(name: str, known: Iterable[str]) -> str | None:
    """The project module `name` refers to (itself, or the module holding the name)."""
    known = set(known)
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def violations(module: str, source: str, known: Iterable[str], is_package: bool = False) -> list[str]:
    """What is wrong with the imports of one module: an import from a higher layer, of a
    test helper, or of an old path kept for users. Empty: nothing."""
    known = set(known)
    own = layer_of(module)
    bad: list[str] = []
    for line, name in imported_names(module, source, is_package):
        top = name.split(".")[0]
        if top in TEST_HELPERS:
            bad.append(f"{module}:{line} imports {name}: a test helper, outside tests/")
            continue
        target = resolve(name, known)
        if target is None or own is None:
            continue
        if target in USER_SHIMS:
            bad.append(f"{module}:{line} imports {target}: an old path kept for users; use "
                       f"{target.replace('realtime.', 'realtime.common.')}")
        layer = layer_of(target)
        if layer is not None and layer > own:
            bad.append(f"{module}:{line} imports {target}: {LAYER_NAMES[own]} layer importing the "
                       f"{LAYER_NAMES[layer]} layer")
    return bad


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """module -> the project modules it imports (any depth), from (source, is_package)."""
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        targets = {resolve(name, sources) for _, name in imported_names(module, source, is_package)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _sources() -> dict[str, tuple[str, bool]]:
    return {m: (p.read_text(encoding="utf-8"), p.name == "__init__.py") for m, p in project_modules().items()}


# ---------------------------------------------------------------- the project

def test_every_module_imports_only_its_layer_or_lower() -> None:
    sources = _sources()
    assert {"realtime.common.types", "engines.features", "realtime.replay", "tools.synth"} <= set(sources)
    bad = [v for m, (src, pkg) in sources.items() for v in violations(m, src, sources, pkg)]
    assert bad == []


def test_project_import_graph_has_no_cycle() -> None:
    assert cycles(import_graph(_sources())) == []


def test_base_layer_imports_no_project_module_when_loaded() -> None:
    """Importing the bottom layer loads nothing else of the project (run in a fresh
    interpreter: this one has loaded everything already); its errors write messages with
    its own text helpers (one line whatever a name holds)."""
    code = ("import sys, realtime.common.types, realtime.common.errors; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PACKAGES!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert eval(out.stdout) == ["realtime", "realtime.common", "realtime.common.errors", "realtime.common.text",
                                "realtime.common.types"]


def test_old_paths_for_users_still_give_the_same_objects() -> None:
    from realtime import errors, types
    from realtime.common import errors as common_errors
    from realtime.common import types as common_types

    assert types.Interval is common_types.Interval and errors.UserError is common_errors.UserError


# ---------------------------------------------------------------- the rules can fail

KNOWN = {"realtime", "realtime.common", "realtime.common.types", "realtime.types", "realtime.pipeline",
         "realtime.replay", "engines", "engines.features", "engines.cuda_flow", "calibration.megc", "tools",
         "tools.synth"}


@pytest.mark.parametrize("module,source,why", [
    ("engines.cuda_flow", "def f():\n    from realtime.pipeline import run_stream\n", "math layer importing the runtime"),
    ("engines.cuda_flow", "import realtime.replay\n", "math layer importing the runtime"),
    ("realtime.common.types", "from engines import features\n", "base layer importing the math"),
    ("calibration.megc", "from realtime.pipeline import x\n", "math layer importing the runtime"),
    ("realtime.replay", "def demo():\n    from tools.synth import write_dataset\n", "runtime layer importing the tools"),
    ("tools.synth", "from media import write_face_clip\n", "a test helper"),
    ("realtime.replay", "import tests.media\n", "a test helper"),
    ("engines.features", "from realtime.types import FlowSettings\n", "old path kept for users"),
    ("realtime.common.types", "from . import types as t\nfrom .. import pipeline\n", "base layer importing the runtime"),
])
def test_rule_catches_planted_bad_import(module: str, source: str, why: str) -> None:
    bad = violations(module, source, KNOWN, is_package=False)
    assert bad and why in " ".join(bad), bad


@pytest.mark.parametrize("module,source", [
    ("realtime.replay", "from engines import features\nfrom realtime.common.types import Interval\n"),
    ("tools.synth", "import realtime.replay\nfrom calibration.megc import x\nimport numpy\n"),
    ("engines.cuda_flow", "from engines import features\nfrom calibration.megc import score\n"),
])
def test_rule_passes_downward_imports(module: str, source: str) -> None:
    assert violations(module, source, KNOWN) == []


def test_cycle_finder_sees_a_lazy_cycle() -> None:
    graph = import_graph({
        "engines.scorers": ("from engines.trt_runtime import T\n", False),
        "engines.trt_runtime": ("def f():\n    from engines.scorers import check_batch\n", False),
        "engines.weights": ("", False),
    })
    assert cycles(graph) == [["engines.scorers", "engines.trt_runtime"]]
