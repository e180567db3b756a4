"""The conda recipe renders and declares the same runtime dependencies as pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import rattler_build
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "conda-recipe" / "recipe.yaml"

#: conda-forge names that differ from the PyPI name; every other package shares its name.
CONDA_TO_PYPI = {"python-xxhash": "xxhash"}
#: Run requirements of the conda package that are not PyPI dependencies.
CONDA_ONLY = {"python"}


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, Any] = tomllib.load(f)["project"]
    return project


def _rendered_recipe() -> rattler_build.Stage1Recipe:
    variants = rattler_build.Stage0Recipe.from_file(RECIPE).render(
        rattler_build.VariantConfig(),
        rattler_build.RenderConfig(
            platform=rattler_build.PlatformConfig(target_platform="linux-64")
        ),
    )
    assert len(variants) == 1, "a noarch: python recipe renders exactly one variant"
    return variants[0].recipe


def _conda_run_requirements() -> dict[str, SpecifierSet]:
    """Map the PyPI name of every conda run requirement to its version specifier."""
    requirements: dict[str, SpecifierSet] = {}
    for spec in _rendered_recipe().requirements.run:
        conda_name, _, version = spec.partition(" ")
        if conda_name in CONDA_ONLY:
            continue
        pypi_name = canonicalize_name(CONDA_TO_PYPI.get(conda_name, conda_name))
        requirements[pypi_name] = SpecifierSet(version.replace(" ", ""))
    return requirements


def _pypi_requirements() -> dict[str, SpecifierSet]:
    requirements = [Requirement(dep) for dep in _pyproject()["dependencies"]]
    return {canonicalize_name(req.name): req.specifier for req in requirements}


def test_recipe_renders_with_project_metadata() -> None:
    recipe = _rendered_recipe()
    project = _pyproject()
    assert recipe.package.name == project["name"]
    assert recipe.package.version == project["version"]
    assert recipe.about.license == project["license"]
    assert recipe.build.noarch == "python"


def test_run_requirements_match_pyproject_dependencies() -> None:
    conda = _conda_run_requirements()
    pypi = _pypi_requirements()
    assert sorted(conda) == sorted(pypi), (
        "conda-recipe/recipe.yaml requirements.run and pyproject.toml [project.dependencies] "
        f"name different packages: only in the recipe {sorted(set(conda) - set(pypi))}, "
        f"only in pyproject {sorted(set(pypi) - set(conda))}; add the missing ones "
        "(and extend CONDA_TO_PYPI if the conda-forge name differs)"
    )
    assert conda == pypi, "the recipe's version bounds differ from pyproject.toml's"


def test_entry_points_match_console_scripts() -> None:
    scripts = _pyproject().get("scripts", {})
    expected = sorted(f"{name} = {target}" for name, target in scripts.items())
    python_build = _rendered_recipe().build.to_dict().get("python", {})
    assert sorted(python_build.get("entry_points", [])) == expected
