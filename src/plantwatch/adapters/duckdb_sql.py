"""SQL pieces shared by the DuckDB adapters: the caller's scope as a bound filter, and rows as dicts."""

from __future__ import annotations

from typing import Any, Final

from plantwatch.services.analytics import Row, Scope

#: Rows of the caller's plants (and lines, when the scope names any); bind with :func:`scope_params`.
IN_SCOPE: Final = "list_contains(?::VARCHAR[], plant) AND (len(?::VARCHAR[]) = 0 OR list_contains(?::VARCHAR[], line))"


def scope_params(scope: Scope) -> list[Any]:
    """The values :data:`IN_SCOPE` binds."""
    return [list(scope.plants), list(scope.lines), list(scope.lines)]


def rows(cursor: Any) -> list[Row]:
    """A cursor's result as dicts keyed by column name."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
