"""Imports point down the layers of ARCHITECTURE.md: read every module's imports with ast (lazy ones too) and fail on
any that points at a unit of the same rank or above."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "embtune"


def ranks_from_note() -> dict[str, int]:
    """Unit -> rank, from the table in ARCHITECTURE.md (the note is the rule, so the test reads it)."""
    ranks = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|(.+?)\|", line)
        if match:
            for unit in re.findall(r"`([^`]+)`", match.group(2)):
                ranks[unit.rstrip("/").removesuffix(".py")] = int(match.group(1))
    return ranks


def unit_of(module: str) -> str:
    """'embtune.data.readers' -> 'data'; 'embtune.cli' -> 'cli'; 'embtune' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported embtune module) for every import in ``source``, relative ones resolved."""
    found = []
    package = module.split(".")[:-1]  # 'embtune.data.readers' and 'embtune.data.__init__' both sit in embtune.data
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "embtune":  # `from embtune import tuners` imports embtune.tuners (or a verb of __init__)
                found += [(node.lineno, f"embtune.{a.name}" if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists()
                           else "embtune") for a in node.names]
            else:
                found.append((node.lineno, name))
    return [(line, name) for line, name in found if name == "embtune" or name.startswith("embtune.")]


def violations(source: str, module: str, ranks: dict[str, int]) -> list[str]:
    unit = unit_of(module)
    problems = []
    for line, name in imports_of(source, module):
        target = unit_of(name)
        if target == unit:
            continue
        if target not in ranks or unit not in ranks:
            problems.append(f"{module}:{line} imports {name}: {unit if unit not in ranks else target} has no rank in ARCHITECTURE.md")
        elif ranks[target] >= ranks[unit]:
            problems.append(f"{module}:{line} imports {name} ({target}, rank {ranks[target]}) from {unit} (rank {ranks[unit]})")
    return problems


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts)


def test_every_module_imports_only_lower_layers():
    ranks = ranks_from_note()
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += violations(path.read_text(encoding="utf-8"), module_name(path), ranks)
    assert not problems, "\n".join(problems)


def test_every_unit_of_the_package_has_a_rank():
    ranks = ranks_from_note()
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(ranks), f"units missing from ARCHITECTURE.md's table: {sorted(units - set(ranks))}"


def test_the_check_catches_an_upward_or_sideways_import():
    """The checker itself: imports that break the order are reported, lazy and relative ones included."""
    ranks = ranks_from_note()
    upward = "def f():\n    from embtune.cli import app\n"
    assert violations(upward, "embtune.data.readers", ranks) == [
        "embtune.data.readers:2 imports embtune.cli (cli, rank 11) from data (rank 3)"]
    sideways = "import embtune.evaluation.metrics\n"
    assert violations(sideways, "embtune.encoders.cache", ranks)  # same rank: neither may import the other
    relative_up = "from ..api import tune\n"
    assert violations(relative_up, "embtune.tuners.base", ranks)
    assert violations("from embtune import api\n", "embtune.tuners.methods", ranks)
    assert not violations("from embtune.errors import EmbtuneError\nfrom .readers import iter_rows\nfrom embtune import data\n",
                          "embtune.encoders.cache", ranks)


def test_every_module_imports_as_import_package_module_as_m():
    """`import embtune.<package>.<module> as m` works for every module: no package shares a name with a function of
    embtune that would shadow it (embtune.finetune and embtune.evaluate are verbs; their packages are nouns)."""
    failed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path).removesuffix(".__init__")
        if name.endswith("__main__"):
            continue
        try:
            exec(f"import {name} as m", {})
        except Exception as e:  # noqa: BLE001 - collect every failure with its reason
            failed.append(f"{name}: {type(e).__name__}: {e}")
    assert not failed, "\n".join(failed)
