"""Small helpers more than one module needs."""

from __future__ import annotations

from starlette.types import Scope


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (`root_path`, e.g. an API Gateway stage)."""
    return scope["path"].removeprefix(scope.get("root_path", ""))
