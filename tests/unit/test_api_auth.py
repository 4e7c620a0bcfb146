"""Token claims to scopes, and the `plantwatch token create` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from plantwatch.api.auth import AUDIENCE, KEY_FILE, claims_scope, load_or_create_key
from plantwatch.services.analytics import Scope


@pytest.mark.parametrize(
    ("claims", "plants", "lines"),
    [
        ({"sub": "a", "plants": ["p1", "p2"], "lines": []}, ("p1", "p2"), ()),
        ({"sub": "a", "custom:plants": "p1", "custom:lines": "l1,l2"}, ("p1",), ("l1", "l2")),
        ({"sub": "a", "custom:plants": "[p1 p2]"}, ("p1", "p2"), ()),  # how API Gateway renders a list claim
    ],
)
def test_claims_become_a_scope(claims: dict[str, object], plants: tuple[str, ...], lines: tuple[str, ...]) -> None:
    assert claims_scope(claims) == Scope(subject="a", plants=plants, lines=lines)


@pytest.mark.parametrize("claims", [{"sub": "a"}, {"plants": ["p'1"]}, {"plants": "p1", "lines": ["x y;"]}])
def test_claims_without_valid_plants_and_lines_are_refused(claims: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"grants no plant|is not a valid identifier"):
        claims_scope(claims)


def test_scope_narrowing() -> None:
    scope = Scope(subject="a", plants=("p1", "p2"), lines=("l1",))
    assert scope.narrowed("p1", None) == Scope(subject="a", plants=("p1",), lines=("l1",))
    assert scope.narrowed("p3", None) is None
    assert scope.narrowed(None, "l2") is None
    assert scope.allows("p2", "l1") and not scope.allows("p2", "l2")


def test_token_create_signs_with_the_data_dir_key(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "plantwatch.cli", "token", "create", "--data-dir", str(tmp_path)]
    done = subprocess.run(
        [*command, "--plant", "p1", "--line", "l1", "--subject", "ops"], capture_output=True, text=True, check=True
    )
    key = load_or_create_key(tmp_path)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o077 == 0
    claims = jwt.decode(done.stdout.strip(), key, algorithms=["HS256"], audience=AUDIENCE)
    assert (claims["plants"], claims["lines"], claims["sub"]) == (["p1"], ["l1"], "ops")
    bad = subprocess.run([*command, "--plant", "p 1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a valid identifier" in bad.stderr and bad.stdout == ""
