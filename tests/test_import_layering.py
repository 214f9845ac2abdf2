"""``focalclick_edge`` imports form no cycle: every import statement counts, module level or inside a
function (a function-level import only hides a cycle until that function runs), and so do
``importlib.import_module("focalclick_edge....")`` calls with a literal name."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "focalclick_edge"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(base: str, level: int, module: str | None, is_package: bool) -> str:
    if level == 0:
        return module or ""
    parts = base.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join([*anchor, *([module] if module else [])])


def import_graph() -> dict[str, set[str]]:
    """Module -> the focalclick_edge modules it imports (anywhere in its body)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node.level, node.module, is_package)
                # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                targets = [node.args[0].value]
            for t in targets:
                if t in mods and t != name:
                    graph[name].add(t)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_walker_sees_function_level_imports_and_reports_a_cycle():
    graph = import_graph()
    # cli.py imports its subcommands inside build_parser(); the walker must see that.
    assert any(t.startswith("focalclick_edge.") for t in graph["focalclick_edge.cli"])
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_focalclick_edge_has_no_import_cycles_including_function_level_imports():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_library_modules_never_import_the_command_line_layer():
    graph = import_graph()
    # The command layer: cli.py, cli_args.py and each subpackage's cli.py (one subcommand each).
    cli_layer = {m for m in graph if m in ("focalclick_edge.cli", "focalclick_edge.__main__") or m.endswith(".cli")}
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if m not in cli_layer for t in ts if t in cli_layer)
    assert not bad, "library code imports the CLI: " + ", ".join(bad)



# Layers, bottom up: a module may import its own layer and the ones below, never one above.
_BELOW = {
    # hardware: the stdlib-only /proc/cpuinfo reader (--run auto compares the CPU with the export's).
    "runtime": {"errors", "fileio", "optional_modules", "hardware"},
    "models": {"errors", "variants"},
    "evaluation": {"runtime", "errors", "fileio", "optional_modules", "cache_dirs", "assets", "hardware"},
}


def test_the_runtime_and_models_layers_import_nothing_above_them():
    """The torch-free runtime never imports evaluation, export, training...; the PyTorch models never
    import the export wrappers (export/torch_session.py sits above both); evaluation never imports the
    export or quantization stages."""
    bad = []
    for m, targets in import_graph().items():
        parts = m.split(".")
        if len(parts) < 2 or parts[1] not in _BELOW or m.endswith(".cli"):
            continue
        allowed = _BELOW[parts[1]] | {parts[1]}
        bad += [f"{m} -> {t}" for t in targets if t.split(".")[1] not in allowed]
    assert not bad, "imports against the layering: " + ", ".join(sorted(bad))
