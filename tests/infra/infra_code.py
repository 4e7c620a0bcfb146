"""Static facts about a Lambda's code: the modules it imports, the env vars it reads, the AWS calls it makes."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import botocore.session
from botocore import xform_name

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"

# IAM actions whose name differs from the API operation, or that an operation needs on top of its own.
# Sources: the S3, Timestream, DynamoDB, Lambda and KMS "actions, resources and condition keys" pages of the Service
# Authorization Reference. Everything not listed maps to "<signing name>:<OperationName>".
ACTION_OVERRIDES: dict[str, tuple[str, ...]] = {
    "s3:ListObjectsV2": ("s3:ListBucket",),
    "s3:ListObjects": ("s3:ListBucket",),
    "s3:HeadBucket": ("s3:ListBucket",),
    "s3:ListObjectVersions": ("s3:ListBucketVersions",),
    "s3:HeadObject": ("s3:GetObject",),
    "s3:CopyObject": ("s3:GetObject", "s3:PutObject"),
    "s3:DeleteObjects": ("s3:DeleteObject",),
    "s3:CreateMultipartUpload": ("s3:PutObject",),
    "s3:UploadPart": ("s3:PutObject",),
    "s3:CompleteMultipartUpload": ("s3:PutObject",),
    "timestream:Query": ("timestream:Select",),
    # A transaction is authorised as its item operations (DynamoDB guide, "Using IAM with DynamoDB
    # transactions"); ours (adapters/dynamo_alerts.py) update an alert and put an audit entry.
    "dynamodb:TransactWriteItems": ("dynamodb:UpdateItem", "dynamodb:PutItem"),
    "lambda:Invoke": ("lambda:InvokeFunction",),  # Lambda's Invoke API is authorized as InvokeFunction
}
# Calls an SDK makes on the code's behalf: Timestream clients discover their cell endpoint first; our
# buckets use SSE-KMS with the platform key, so writing needs GenerateDataKey and reading needs Decrypt.
IMPLICIT_ACTIONS: dict[str, tuple[str, ...]] = {
    "timestream:": ("timestream:DescribeEndpoints",),
    "s3:PutObject": ("kms:GenerateDataKey",),
    "s3:GetObject": ("kms:Decrypt",),
}


@dataclass
class CodeFacts:
    """What a function's import closure reads and calls."""

    modules: list[Path] = field(default_factory=list)
    env_required: set[str] = field(default_factory=set)
    env_optional: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    operations: set[tuple[str, str]] = field(default_factory=set)  # (service, OperationName)
    unanalyzable: list[str] = field(default_factory=list)


def _module_file(dotted: str) -> Path | None:
    base = SRC.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and path.is_relative_to(SRC):
                package = _package_of(path).split(".")
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, node.module] if node.module else package)
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_closure(entry: Path, package: str = "plantwatch") -> list[Path]:
    """entry plus every module of `package` it imports, directly or not (package __init__ files included)."""
    seen: dict[Path, None] = {}
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        tree = ast.parse(path.read_text(), filename=str(path))
        for dotted in _imported_modules(path, tree):
            parts = dotted.split(".")
            if parts[0] != package:
                continue
            for i in range(1, len(parts) + 1):
                found = _module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return list(seen)


def _is_environ(node: ast.expr) -> bool:
    """os.environ, environ, or a mapping parameter named env (settings that take the environment injected)."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id in ("environ", "env")
    )


def _const_str(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kw(call: ast.Call, name: str) -> str | None:
    return next((_const_str(k.value) for k in call.keywords if k.arg == name), None)


@functools.cache
def aws_services() -> frozenset[str]:
    """Every service name boto3.client() accepts."""
    return frozenset(botocore.session.get_session().get_available_services())


@functools.cache
def _operations(service: str) -> dict[str, str]:
    """snake_case method name -> OperationName for a boto3 client of `service`."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


@functools.cache
def signing_name(service: str) -> str:
    """The IAM action prefix of a boto3 service (timestream-write -> timestream, greengrassv2 -> greengrass)."""
    return str(botocore.session.get_session().get_service_model(service).signing_name)


def _settings_env(node: ast.ClassDef) -> tuple[set[str], set[str]]:
    """(required, optional) env names of a pydantic-settings class with an env_prefix, else empty sets."""
    prefix = None
    for statement in node.body:
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Call):
            prefix = _kw(value, "env_prefix") or prefix
    if prefix is None:
        return set(), set()
    required, optional = set(), set()
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            name = statement.target.id
            if name == "model_config" or name.startswith("_"):
                continue
            (required if statement.value is None else optional).add(f"{prefix}{name}".upper())
    return required, optional


def scan(entry: Path) -> CodeFacts:
    """Env vars read and AWS operations called by entry and the plantwatch modules it imports."""
    facts = CodeFacts(modules=import_closure(entry))
    method_calls: set[str] = set()
    paginators: set[str] = set()
    for path in facts.modules:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                required, optional = _settings_env(node)
                facts.env_required |= required
                facts.env_optional |= optional
            if isinstance(node, ast.Subscript) and _is_environ(node.value):
                name = _const_str(node.slice)
                if name:
                    facts.env_required.add(name)
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            first = _const_str(node.args[0]) if node.args else None
            if isinstance(func, ast.Attribute):
                if first and (func.attr == "getenv" or (func.attr == "get" and _is_environ(func.value))):
                    facts.env_optional.add(first)
                elif func.attr == "client" and (first or _kw(node, "service_name")) in aws_services():
                    facts.services.add(first or _kw(node, "service_name") or "")
                elif func.attr == "client" and isinstance(func.value, ast.Name) and func.value.id == "boto3":
                    facts.unanalyzable.append(f"{path.name}: boto3.client() with a service name that is not a literal")
                elif func.attr == "resource" and first in aws_services():
                    facts.unanalyzable.append(f"{path.name}: boto3 resource({first!r}); use a client")
                elif func.attr == "get_paginator" and first:
                    paginators.add(first)
                else:
                    method_calls.add(func.attr)
            elif isinstance(func, ast.Name) and func.id == "getenv" and first:
                facts.env_optional.add(first)
    facts.env_optional -= facts.env_required
    for service in facts.services:
        ops = _operations(service)
        for method in (method_calls | paginators) & ops.keys():
            facts.operations.add((service, ops[method]))
    return facts


def required_actions(operations: Iterable[tuple[str, str]]) -> set[str]:
    """IAM actions that the given (service, OperationName) calls need."""
    actions: set[str] = set()
    for service, operation in operations:
        action = f"{signing_name(service)}:{operation}"
        actions.update(ACTION_OVERRIDES.get(action, (action,)))
    for action in list(actions):
        for trigger, implied in IMPLICIT_ACTIONS.items():
            if action == trigger or (trigger.endswith(":") and action.startswith(trigger)):
                actions.update(implied)
    return actions
