"""One code-dependency map (pg2_pipeline.provenance): it covers exactly what each stage imports,
dvc.yaml lists exactly it, and the logged model ships exactly what it imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pg2_pipeline.paths import ASSET_NAMES
from pg2_pipeline.provenance import CODE_DEPENDENCIES, MODEL_SOURCE, PLUMBING, files_of

from conftest import REPO

# The module each asset's Dagster adapter calls (its pure function lives there).
ENTRY = {
    "twin": ["pg2_pipeline.data.twin.build"],
    "image_index": ["pg2_pipeline.data.ingest"],
    "keypoints": ["pg2_pipeline.pose.stage"],
    "pairs": ["pg2_pipeline.pairs.stage"],
    "manifests": ["pg2_pipeline.inputs.manifests"],
    "stage1": ["pg2_pipeline.train.loop", "pg2_pipeline.train.stage1"],
    "stage2": ["pg2_pipeline.train.loop", "pg2_pipeline.train.stage2"],
    "evaluation": [
        "pg2_pipeline.evaluate.stage",
        "pg2_pipeline.evaluate.worker",
        "pg2_pipeline.registry.publish",
        "pg2_pipeline.registry.pyfunc_model",
    ],
    "score": ["pg2_pipeline.score.stage", "pg2_pipeline.score.project", "pg2_pipeline.score.layouts"],
}
PACKAGE_DATA = "pg2_pipeline/data/standard"  # Parquet tables, read with importlib.resources


def module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """pg2_pipeline modules imported anywhere in ``path`` (function-level imports included)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("pg2_pipeline")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            if base.startswith("pg2_pipeline"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")}
    return out


def closure(modules: list[str]) -> set[Path]:
    """Files of ``modules``, everything they import, and the packages' ``__init__`` on the way."""
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_modules(path))
    return seen


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def rel(paths) -> set[str]:
    """Project-relative names, without the docstring-only package ``__init__`` files (nothing
    in them can change what a stage computes)."""
    return {str(p.relative_to(REPO)) for p in paths if not (p.name == "__init__.py" and docstring_only(p))}


@pytest.mark.parametrize("stage", ASSET_NAMES)
def test_the_map_covers_exactly_what_the_stage_imports(stage):
    imported = rel(closure(ENTRY[stage]))
    listed = rel(files_of(CODE_DEPENDENCIES[stage], REPO))
    plumbing = set(PLUMBING)
    missing = imported - listed - plumbing
    assert not missing, f"{stage} imports code its dependency map does not list: {sorted(missing)}"
    unused = {f for f in listed if not f.startswith(PACKAGE_DATA)} - imported
    assert not unused, f"{stage}'s dependency map lists code the stage never imports: {sorted(unused)}"
    assert not listed & plumbing, f"plumbing listed as a dependency of {stage}: {sorted(listed & plumbing)}"


def test_dvc_yaml_lists_the_map():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(CODE_DEPENDENCIES) == set(ASSET_NAMES)
    for name, stage in stages.items():
        code, mapped = {d for d in stage["deps"] if d.startswith("pg2_pipeline")}, set(CODE_DEPENDENCIES[name])
        assert code == mapped, (
            f"dvc.yaml stage {name}: only in dvc.yaml {sorted(code - mapped)}, only in the map {sorted(mapped - code)}"
        )


def test_the_logged_model_ships_what_it_imports():
    imported = rel(closure(["pg2_pipeline.registry.pyfunc_model"])) - {
        "pg2_pipeline/registry/pyfunc_model.py",
        "pg2_pipeline/registry/__init__.py",
    }
    assert imported == rel(files_of(MODEL_SOURCE, REPO))
