"""The canonical text of a reference, `secret://{scope}/{NAME}[?env=…&version=…&stage=…]`.

Parsing and expanding references is core's `core.references`.
"""

from __future__ import annotations

from core.domain.secrets import Stage
from core.domain.values import ScopeRef, ScopeType

SCHEME = "secret://"


def format_reference(
    scope: ScopeRef,
    name: str,
    environment: str | None = None,
    version: int | None = None,
    stage: Stage | None = None,
) -> str:
    """The canonical text of a reference."""
    where = "global" if scope.type is ScopeType.GLOBAL else f"{scope.type.value}/{scope.id}"
    query = [
        f"{key}={value}"
        for key, value in (("env", environment), ("version", version), ("stage", stage))
        if value is not None
    ]
    return f"{SCHEME}{where}/{name}" + ("?" + "&".join(query) if query else "")
