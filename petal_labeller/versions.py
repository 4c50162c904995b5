"""Model version names: one rule for every path that takes one (the CLI, the DAGs' Params,
the store, the models folder under PETAL_HOME, S3 keys and SageMaker names).

A version becomes a folder name (`PETAL_HOME/models/<version>/`), so `../x` once wrote
outside PETAL_HOME; SageMaker names allow 63 characters of letters, digits and `-`.
"""

from __future__ import annotations

import re

#: Also the DAG Params' JSON-schema `pattern` and migration 0006's CHECK (same regex).
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
MAX_VERSION_LENGTH = 63
#: The JSON-schema form for the DAGs' Params: jsonschema runs `re.search`, where `$` also
#: matches before a final newline ("v1\n" passed). `\Z` is not ECMA-262 (the trigger
#: form's dialect), so a lookahead refuses the newline in both dialects.
VERSION_PARAM_PATTERN = VERSION_PATTERN + r"(?!\n)"


class VersionNameError(ValueError):
    """Not a usable model version name; the message says what is allowed."""


def check_version(version: object) -> str:
    """`version` itself when it is 1-63 letters, digits, `.`, `_` or `-`, starting alnum."""
    if isinstance(version, str) and re.fullmatch(VERSION_PATTERN, version):
        return version
    shown = repr(version)[:40] + ("..." if len(repr(version)) > 40 else "")
    raise VersionNameError(
        f"model version {shown} must be 1-{MAX_VERSION_LENGTH} letters, digits, '.', '_' "
        "or '-', starting with a letter or digit"
    )
