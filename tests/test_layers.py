"""The package reads bottom-up: each module imports only from its own layer or below, and no modules
import each other in a circle (imports inside functions count: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_tasks"

# Bottom to top; the docs' module map (docs/reference/how-it-is-built.md) is generated from these layers.
LAYERS = [
    {"__init__", "errors", "files", "secrets", "options"},
    # The one command-line parser, below the data layer, whose fetch command uses it.
    {"parsing", "config_files", "cli_help", "help_cache"},
    {"data"},
    {"text", "audio", "metrics", "plots"},
    {"modeling", "surgery"},
    {"tasks"},
    {"args", "runner", "run_state", "run_log", "run_folder", "interrupt", "callbacks", "model_card", "portable",
     "export", "study", "interpret", "samples", "trackers", "registry", "launch", "command", "throughput"},
]
LAYER_OF = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The hf_tasks modules `path` imports, as dotted names (`from hf_tasks.x import y` counts `hf_tasks.x.y`
    when that is a module, else `hf_tasks.x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("hf_tasks")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("hf_tasks"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_of_the_package_has_a_layer():
    assert {part_of(module) for module in MODULES} <= set(LAYER_OF)


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for module, path in MODULES.items():
        for imported in imports_of(path):
            if LAYER_OF[part_of(imported)] > LAYER_OF[part_of(module)]:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_no_import_cycles_between_modules():
    graph = {module: {imported for imported in imports_of(path) if imported in MODULES and imported != module}
             for module, path in MODULES.items()}
    # A package's __init__ is imported with any of its modules; it is not a cycle for a module to be
    # re-exported by its own package.
    graph = {module: {imported for imported in targets if not module.startswith(imported + ".")}
             for module, targets in graph.items()}
    cycles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join(trail[trail.index(imported):] + [imported]))
            elif imported not in state:
                visit(imported, trail + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def reaches(module: str) -> set[str]:
    """Every hf_tasks module `module` imports, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        for imported in imports_of(MODULES[todo.pop()]):
            if imported in MODULES and imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def test_the_runner_does_not_reach_the_command_line():
    # The runner reads the run object (hf_tasks.run_state); parsing the command line is the recipe's business.
    assert reaches("hf_tasks.runner") & {"hf_tasks.args", "hf_tasks.parsing", "hf_tasks.cli_help"} == set()


def test_modeling_does_not_reach_surgery():
    # Surgery changes built models; building and loading them needs none of it (pruned-structure
    # loading lives in hf_tasks.modeling.loading, beside the shipped head-removal code).
    reached = {module for name in MODULES if part_of(name) == "modeling" for module in reaches(name)}
    assert {module for module in reached if part_of(module) == "surgery"} == set()
