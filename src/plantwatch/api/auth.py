"""Bearer tokens scoped to plants (and optionally lines): local HS256 JWTs, or claims API Gateway already checked."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import jwt
from fastapi import HTTPException, Request

from plantwatch.contract.reading import ident_problem
from plantwatch.services.analytics import Scope

KEY_FILE: Final = "api-token.key"
ISSUER: Final = "plantwatch-local"
AUDIENCE: Final = "plantwatch-api"
DEFAULT_TTL_S: Final = 30 * 24 * 3600
#: The claims that scope a local token.
PLANTS_CLAIM: Final = "plants"
LINES_CLAIM: Final = "lines"
#: The same as Cognito custom attributes, as a Cognito ID token carries them (the user pool in
#: cloud/terraform/api.tf defines them; an administrator sets them, users may only read them).
COGNITO_PLANTS_CLAIM: Final = "custom:plants"
COGNITO_LINES_CLAIM: Final = "custom:lines"
COGNITO_SCOPE_CLAIMS: Final = (COGNITO_PLANTS_CLAIM, COGNITO_LINES_CLAIM)
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


class Authenticator(Protocol):
    """Turns a request into the caller's scope, or raises 401."""

    def scope(self, request: Request) -> Scope:
        """The caller's scope."""
        ...


def load_or_create_key(data_dir: Path) -> bytes:
    """The signing key kept in ``data_dir`` (created, readable by the owner only, on first use)."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _names(value: Any, what: str) -> tuple[str, ...]:
    """A claim holding identifiers: a list, or a string separated by commas/spaces (as API Gateway passes them)."""
    items = re.split(r"[\s,\[\]]+", value) if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"claim {what} must be a list of names")
    names = tuple(str(i) for i in items if str(i))
    for name in names:
        if problem := ident_problem(what, name):
            raise ValueError(problem)
    return names


def claims_scope(claims: Mapping[str, Any]) -> Scope:
    """The scope granted by token claims ``plants`` and ``lines`` (or Cognito's ``custom:plants``/``custom:lines``)."""
    plants = _names(claims.get(PLANTS_CLAIM, claims.get(COGNITO_PLANTS_CLAIM, [])), "plant")
    lines = _names(claims.get(LINES_CLAIM, claims.get(COGNITO_LINES_CLAIM, [])), "line")
    if not plants:
        raise ValueError("the token grants no plant")
    return Scope(subject=str(claims.get("sub") or claims.get("username") or "unknown"), plants=plants, lines=lines)


def create_token(
    key: bytes,
    *,
    plants: list[str],
    lines: list[str] | None = None,
    subject: str = "operator",
    ttl_s: int = DEFAULT_TTL_S,
) -> str:
    """A signed token for ``plants`` (and only ``lines`` of them, if given)."""
    now = int(time.time())
    claims = {"sub": subject, PLANTS_CLAIM: plants, LINES_CLAIM: lines or [], "iss": ISSUER, "aud": AUDIENCE}
    claims_scope(claims)  # refuse to sign what would never verify
    return jwt.encode({**claims, "iat": now, "exp": now + ttl_s}, key, algorithm="HS256")


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'", headers=_UNAUTHORIZED)
    return token.strip()


class LocalTokens:
    """Verifies HS256 tokens signed with the data dir's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def scope(self, request: Request) -> Scope:
        """The scope of a valid, unexpired token."""
        try:
            claims = jwt.decode(
                _bearer(request),
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "sub", PLANTS_CLAIM]},
            )
            return claims_scope(claims)
        except (jwt.PyJWTError, ValueError) as exc:
            raise HTTPException(401, f"invalid token: {exc}", headers=_UNAUTHORIZED) from exc


class ApiGatewayClaims:
    """Trusts the JWT claims an API Gateway JWT authorizer (Cognito) verified and put into the Lambda event.

    The authorizer accepts a Cognito ID token (``aud`` is the app client) and an access token (``client_id`` is),
    but only the ID token carries the user's custom attributes; an access token is refused with that reason.
    """

    def scope(self, request: Request) -> Scope:
        """The scope from ``requestContext.authorizer.jwt.claims`` of the event Mangum passes through."""
        event = request.scope.get("aws.event") or {}
        claims = event.get("requestContext", {}).get("authorizer", {}).get("jwt", {}).get("claims")
        if not claims:
            raise HTTPException(401, "no verified token claims in the request", headers=_UNAUTHORIZED)
        if claims.get("token_use") == "access" and COGNITO_PLANTS_CLAIM not in claims:
            raise HTTPException(
                401,
                f"invalid token: a Cognito access token carries no {COGNITO_PLANTS_CLAIM}; send the ID token",
                headers=_UNAUTHORIZED,
            )
        try:
            return claims_scope(claims)
        except ValueError as exc:
            raise HTTPException(401, f"invalid token: {exc}", headers=_UNAUTHORIZED) from exc
