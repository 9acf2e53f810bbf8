"""The shipped CloudFormation templates: find, read, fill in parameters, render, cfn-lint.

The templates live in this package (``cloudformation/*.yaml``, installed with it) and are
linked from ``infra/`` at the repository root. A template is read with cfn-lint's own
decoder, so the short forms (``!Ref``, ``!Sub``, ...) arrive as their long forms
(``{"Ref": ...}``) and any template CloudFormation accepts can be checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from caroud.errors import InfraError, ValidationError

TEMPLATES = {"single": "elasticache.yaml", "cluster": "elasticache-cluster.yaml"}
"""Shipped templates by short name: one shard (the default), or cluster mode enabled."""
DEFAULT_TEMPLATE = "single"
LINT_REGIONS = ("ap-southeast-1",)
"""Regions cfn-lint checks resource types and node types against (the guide's region)."""


@dataclass(frozen=True)
class Template:
    """A template as text (what CloudFormation is sent) and as plain data (what is checked)."""

    name: str
    text: str
    body: dict[str, Any]

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        params: dict[str, dict[str, Any]] = self.body.get("Parameters") or {}
        return params

    @property
    def resource_count(self) -> int:
        return len(self.body.get("Resources") or {})


def plain(node: Any) -> Any:
    """cfn-lint's decoded nodes (dict/str subclasses carrying line marks) as builtin types."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, str):
        return str(node)
    return node


def decode(name: str, text: str) -> Template:
    """Parse template ``text`` (YAML or JSON); :class:`InfraError` if it is not a template."""
    from cfnlint.decode import decode_str

    body, errors = decode_str(text)
    if errors or not isinstance(body, dict):
        first = f": {errors[0].message}" if errors else ""
        raise InfraError(f"{name} is not a CloudFormation template (YAML or JSON){first}")
    return Template(name, text, plain(body))


def shipped(short_name: str) -> Template:
    """One of :data:`TEMPLATES`, read from the installed package."""
    if short_name not in TEMPLATES:
        raise ValidationError(
            "template", f"{short_name!r} is not one of {', '.join(TEMPLATES)} (or give a path)"
        )
    filename = TEMPLATES[short_name]
    text = resources.files("caroud.infra").joinpath("cloudformation", filename).read_text("utf-8")
    return decode(f"infra/{filename}", text)


def load(spec: str | Path) -> Template:
    """A shipped template by short name (``single``, ``cluster``), else a template file."""
    if isinstance(spec, str) and spec in TEMPLATES:
        return shipped(spec)
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InfraError(f"cannot read the template {path}: {e.strerror or e}") from e
    return decode(str(path), text)


# -- parameters --------------------------------------------------------------------------


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """``["Key=Value", ...]`` as a dict; :class:`ValidationError` on a pair without ``=``."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError("param", f"expected NAME=VALUE, got {pair!r}")
        values[key.strip()] = value.strip()
    return values


def check_parameters(template: Template, values: Mapping[str, str]) -> dict[str, str]:
    """``values`` checked against the template's declarations (name, allowed values, pattern,
    bounds) before anything is sent to AWS; :class:`ValidationError` names the first bad one."""
    declared = template.parameters
    for key, value in values.items():
        spec = declared.get(key)
        if spec is None:
            raise ValidationError(
                "param", f"{template.name} has no parameter {key!r} (it has {', '.join(declared)})"
            )
        _check_value(key, value, spec)
    return dict(values)


def _check_value(key: str, value: str, spec: Mapping[str, Any]) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(a) for a in allowed]:
        raise ValidationError(key, f"{value!r} is not one of {', '.join(map(str, allowed))}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        hint = spec.get("ConstraintDescription") or f"the pattern {pattern}"
        raise ValidationError(key, f"{value!r} does not match {hint}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ValidationError(key, f"{value!r} is not a number") from None
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise ValidationError(key, f"{value} is outside [{low}, {high}]")


def missing_parameters(template: Template, values: Mapping[str, str]) -> list[str]:
    """Parameters without a default that ``values`` does not give (CloudFormation needs them)."""
    return [
        k for k, spec in template.parameters.items() if "Default" not in spec and k not in values
    ]


def fill(template: Template, values: Mapping[str, str]) -> dict[str, Any]:
    """The template body with each given parameter's ``Default`` set to its value."""
    check_parameters(template, values)
    body = json.loads(json.dumps(template.body))  # a deep copy of plain data
    for key, value in values.items():
        spec = body["Parameters"][key]
        spec["Default"] = _typed(value) if spec.get("Type") == "Number" else value
    return body  # type: ignore[no-any-return]


def _typed(value: str) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def render(body: Mapping[str, Any], fmt: str) -> str:
    """``body`` as JSON or YAML (long-form intrinsics, which CloudFormation reads as well)."""
    if fmt == "json":
        return json.dumps(body, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(dict(body), sort_keys=False, width=100, allow_unicode=True)
    raise ValidationError("format", f"{fmt!r} is not json or yaml")


# -- cfn-lint ----------------------------------------------------------------------------


def lint(template: Template, regions: Sequence[str] = LINT_REGIONS) -> list[str]:
    """cfn-lint errors and warnings, one line each (``NAME:LINE:COL: [RULE] message``).

    Informational findings are left out: they are suggestions, not faults.
    """
    from cfnlint.api import lint as cfn_lint

    lines: list[str] = []
    for match in cfn_lint(template.text, regions=list(regions)):
        rule = str(match.rule.id)
        if rule.startswith("I"):
            continue
        where = f"{template.name}:{match.linenumber}:{match.columnnumber}"
        lines.append(f"{where}: [{rule}] {match.message}")
    return lines


def validate(template: Template) -> list[str]:
    """cfn-lint's findings, then the project's policy violations, one line each (none: valid)."""
    from caroud.infra import policy

    lines = lint(template)
    lines += [f"{template.name}: {v}" for v in policy.check(template.body)]
    return lines
