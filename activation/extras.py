"""Optional extras: which modules a feature needs, and the line that installs them.

The base install runs validate/plan/run on DuckDB with the webhook and file destinations; a
vendor's SDK, another warehouse's driver or the daemon's scheduler come with an extra
(`pip install 'activation-etl[hubspot]'`). A feature checks for its modules before it imports
them, so a missing one is a configuration error naming that line, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.util import find_spec

DISTRIBUTION = "activation-etl"


def install_line(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The modules of `modules` that cannot be imported (found without importing them)."""
    missing = []
    for module in modules:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a dotted name whose parent is missing, or a blocked import
            found = False
        if not found:
            missing.append(module)
    return missing


def needs(what: str, extra: str | None, requires: Mapping[str, str]) -> str | None:
    """None when every distribution of `requires` (distribution -> the module it provides) can
    be imported, else what to install: "<what> needs the <extra> extra: pip install …"."""
    gone = set(missing_modules(requires.values()))
    if not gone:
        return None
    dists = [d for d, module in requires.items() if module in gone]
    if extra is None:  # a third-party plugin: its own requirements
        return f"{what} needs {', '.join(dists)}: pip install {' '.join(dists)}"
    return f"{what} needs the {extra} extra: {install_line(extra)} ({', '.join(dists)} cannot be imported)"
