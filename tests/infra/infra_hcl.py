"""Read cloud/terraform with python-hcl2 into plain Python: quotes stripped, block markers dropped."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "cloud" / "terraform"
_REF = re.compile(r"^\$\{([^{}]+)\}$")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load(directory: Path) -> dict[str, list[Any]]:
    """Every top-level block of the .tf files in directory, merged by kind (resource, data, module, ...)."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for kind, items in _plain(hcl2.load(handle)).items():
                merged.setdefault(kind, []).extend(items)
    return merged


def reference(value: Any) -> str | None:
    """The expression inside a bare "${...}" value, else None."""
    match = _REF.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


@dataclass(frozen=True)
class Config:
    """One Terraform module directory, indexed."""

    directory: Path
    blocks: dict[str, list[Any]]

    @classmethod
    def read(cls, directory: Path = TERRAFORM) -> Config:
        """Parse a module directory."""
        return cls(directory, load(directory))

    def _typed(self, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self.blocks.get(kind, []):
            for type_, named in item.items():
                for name, body in named.items():
                    out[(type_, name)] = body
        return out

    def resources(self, type_: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """resource blocks, optionally of one type, keyed by (type, name)."""
        return {k: v for k, v in self._typed("resource").items() if type_ is None or k[0] == type_}

    def data(self, type_: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """data blocks, optionally of one type, keyed by (type, name)."""
        return {k: v for k, v in self._typed("data").items() if type_ is None or k[0] == type_}

    def named(self, kind: str) -> dict[str, dict[str, Any]]:
        """module or variable blocks keyed by name."""
        return {name: body for item in self.blocks.get(kind, []) for name, body in item.items()}

    def locals(self) -> dict[str, Any]:
        """All locals, merged."""
        return {k: v for item in self.blocks.get("locals", []) for k, v in item.items()}

    def environment(self, body: dict[str, Any]) -> dict[str, str]:
        """A function module's environment as the Lambda would see it with every variable at its default.

        A bare ${var.X} becomes X's default (as Terraform renders it: true/false, numbers as written); any other
        expression becomes a placeholder string (an https:// one where the value is a URL).
        """
        defaults = {name: v.get("default") for name, v in self.named("variable").items()}

        def rendered(value: Any) -> str:
            if isinstance(value, bool):
                return "true" if value else "false"
            return value if isinstance(value, str) else json.dumps(value)

        def value(v: str) -> str:
            expression = reference(v)
            if expression is not None and expression.startswith("var."):
                return rendered(defaults[expression.removeprefix("var.")])
            # a string built of variables and the IoT ARN prefix, e.g. a thing group ARN template
            v = re.sub(r"\$\{var\.(\w+)\}", lambda m: rendered(defaults[m.group(1)]), v)
            v = v.replace("${local.iot_arn}", "arn:aws:iot:eu-west-1:123456789012")
            if "${" not in v:
                return v
            return "https://tf-expression.invalid" if v.startswith("https://") else "tf-expression"

        return {k: value(v) for k, v in body.get("environment", {}).items()}

    def modules_from(self, source: str) -> dict[str, dict[str, Any]]:
        """module calls whose source is `source` (e.g. ./modules/lambda_function)."""
        return {name: body for name, body in self.named("module").items() if body.get("source") == source}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Statements of an aws_iam_policy_document, dynamic ones included (their content blocks)."""
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for name, body in dynamic.items():
            if name == "statement":
                found.extend(body.get("content", []))
    return found
