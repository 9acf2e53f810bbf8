"""The project's own rules for a Redis stack, on top of cfn-lint. Pure: a template body in,
violations out.

    rule                              what it demands
    no-public-ingress                 no ingress from 0.0.0.0/0 or ::/0
    no-public-ip                      no Elastic IP, no AssociatePublicIpAddress/MapPublicIpOnLaunch
    6379-from-backend-only            every ingress rule is TCP 6379 exactly, from a security
                                      group (SourceSecurityGroupId), never a CIDR or prefix list;
                                      the cache listens on 6379 and has its own security group
    auth-required                     a replication group has an AUTH token (or RBAC user groups)
    auth-token-from-secrets-manager   the token is a ``{{resolve:secretsmanager:...}}`` dynamic
                                      reference: a Ref to a NoEcho parameter is not enough, the
                                      token then passes through parameters in plain text
    tls-with-auth-token               TransitEncryptionEnabled is true wherever a token is set
    backups-on                        SnapshotRetentionLimit is at least 1, whatever the parameters

A value decided by parameters or conditions must satisfy the rule for every value they
allow: a ``Ref`` to a parameter counts by its ``AllowedValues`` or ``MinValue``, an
``Fn::If`` by both of its branches. Anything the checks cannot decide fails.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

NO_PUBLIC_INGRESS = "no-public-ingress"
NO_PUBLIC_IP = "no-public-ip"
PORT_FROM_BACKEND = "6379-from-backend-only"
AUTH_REQUIRED = "auth-required"
TOKEN_FROM_SECRETS_MANAGER = "auth-token-from-secrets-manager"
TLS_WITH_TOKEN = "tls-with-auth-token"
BACKUPS_ON = "backups-on"
RULES = (
    NO_PUBLIC_INGRESS,
    NO_PUBLIC_IP,
    PORT_FROM_BACKEND,
    AUTH_REQUIRED,
    TOKEN_FROM_SECRETS_MANAGER,
    TLS_WITH_TOKEN,
    BACKUPS_ON,
)

REDIS_PORT = 6379
PUBLIC_CIDRS = {"0.0.0.0/0", "::/0"}
DYNAMIC_SECRET = "{{resolve:secretsmanager:"
SG = "AWS::EC2::SecurityGroup"
SG_INGRESS = "AWS::EC2::SecurityGroupIngress"
REPLICATION_GROUP = "AWS::ElastiCache::ReplicationGroup"
CACHE_CLUSTER = "AWS::ElastiCache::CacheCluster"
ELASTICACHE_USER = "AWS::ElastiCache::User"
PUBLIC_IP_TYPES = {"AWS::EC2::EIP", "AWS::EC2::EIPAssociation"}
PUBLIC_IP_FLAGS = ("AssociatePublicIpAddress", "MapPublicIpOnLaunch")
NOT_SOURCES = ("CidrIp", "CidrIpv6", "SourcePrefixListId", "SourceSecurityGroupName")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: the resource (logical id), the rule, and what is wrong."""

    resource: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: [{self.rule}] {self.message}"


def check(body: Mapping[str, Any]) -> list[Violation]:
    """Every violation of :data:`RULES` in the template ``body`` (plain data), in order."""
    values = _Values(body.get("Parameters") or {})
    found: list[Violation] = []
    for name, kind, props in _resources(body):
        if kind in PUBLIC_IP_TYPES:
            found.append(Violation(name, NO_PUBLIC_IP, f"{kind} gives the stack a public IP"))
        found += _public_ip_flags(name, props, values)
        for label, rule in _ingress_rules(name, kind, props):
            found += _check_ingress(label, rule, values)
        if kind == REPLICATION_GROUP:
            found += _check_replication_group(name, props, values)
        elif kind == CACHE_CLUSTER:
            found += _check_backups(name, props, values)
        elif kind == ELASTICACHE_USER:
            found += _check_user(name, props)
    return found


def _resources(body: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, resource in (body.get("Resources") or {}).items():
        if isinstance(resource, dict):
            props = resource.get("Properties")
            yield name, str(resource.get("Type", "")), props if isinstance(props, dict) else {}


class _Values:
    """What a property may evaluate to, given the template's parameters."""

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        self.parameters = parameters

    def possible(self, node: Any) -> list[Any] | None:
        """Every literal ``node`` may be, or None if parameters leave it open."""
        if isinstance(node, dict) and len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref" and isinstance(arg, str):
                return self._parameter_values(arg)
            if fn == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
                both = [self.possible(arg[1]), self.possible(arg[2])]
                return None if None in both else [v for b in both for v in b or []]
            return None
        return [node]

    def _parameter_values(self, name: str) -> list[Any] | None:
        spec = self.parameters.get(name)
        if not isinstance(spec, dict):
            return None  # a resource or a pseudo parameter
        if "AllowedValues" in spec:
            return list(spec["AllowedValues"])
        return None

    def minimum(self, node: Any) -> float | None:
        """The smallest number ``node`` may be, or None if it may be anything (or not a number)."""
        if isinstance(node, dict) and len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref" and isinstance(arg, str):
                spec = self.parameters.get(arg)
                if isinstance(spec, dict) and "AllowedValues" not in spec:
                    low = spec.get("MinValue")
                    return _number(low) if low is not None else None
            elif fn == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
                both = [self.minimum(arg[1]), self.minimum(arg[2])]
                return None if None in both else min(b for b in both if b is not None)
        options = self.possible(node)
        if options is None:
            return None
        numbers = [_number(v) for v in options]
        return None if None in numbers else min(n for n in numbers if n is not None)

    def always_equal(self, node: Any, number: float) -> bool:
        options = self.possible(node)
        return options is not None and all(_number(v) == number for v in options)

    def maybe_true(self, node: Any) -> bool:
        options = self.possible(node)
        return options is None or any(str(v).lower() == "true" for v in options)

    def always_true(self, node: Any) -> bool:
        options = self.possible(node)
        return options is not None and all(str(v).lower() == "true" for v in options)

    def any_public(self, node: Any) -> bool:
        options = self.possible(node)
        if options is None:  # an open parameter: is its default public?
            default = self._ref_default(node)
            return default in PUBLIC_CIDRS
        return any(str(v) in PUBLIC_CIDRS for v in options)

    def _ref_default(self, node: Any) -> Any:
        if isinstance(node, dict) and isinstance(node.get("Ref"), str):
            spec = self.parameters.get(node["Ref"])
            return spec.get("Default") if isinstance(spec, dict) else None
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- network -----------------------------------------------------------------------------


def _public_ip_flags(name: str, props: Any, values: _Values) -> list[Violation]:
    found: list[Violation] = []
    for key, value in _walk(props):
        if key in PUBLIC_IP_FLAGS and values.maybe_true(value):
            found.append(Violation(name, NO_PUBLIC_IP, f"{key} is {value!r}: nothing public"))
    return found


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _ingress_rules(name: str, kind: str, props: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if kind == SG_INGRESS:
        yield name, props
    elif kind == SG:
        rules = props.get("SecurityGroupIngress") or []
        for i, rule in enumerate(rules if isinstance(rules, list) else [rules]):
            yield f"{name}.SecurityGroupIngress[{i}]", rule


def _check_ingress(label: str, rule: Any, values: _Values) -> list[Violation]:
    if not isinstance(rule, dict):
        return [Violation(label, PORT_FROM_BACKEND, "an ingress rule that cannot be checked")]
    found: list[Violation] = []
    for key in ("CidrIp", "CidrIpv6"):
        if key in rule and values.any_public(rule[key]):
            found.append(
                Violation(label, NO_PUBLIC_INGRESS, f"{key} {rule[key]!r} is the internet")
            )
    sources = [k for k in NOT_SOURCES if k in rule]
    if sources:
        found.append(
            Violation(
                label,
                PORT_FROM_BACKEND,
                f"source {sources[0]} given: allow the backend's "
                "security group (SourceSecurityGroupId) instead",
            )
        )
    elif "SourceSecurityGroupId" not in rule:
        found.append(
            Violation(
                label,
                PORT_FROM_BACKEND,
                "no SourceSecurityGroupId: allow the backend's security group",
            )
        )
    protocol = values.possible(rule.get("IpProtocol"))
    if protocol is None or any(str(p).lower() not in ("tcp", "6") for p in protocol):
        found.append(
            Violation(label, PORT_FROM_BACKEND, f"IpProtocol {rule.get('IpProtocol')!r}: only tcp")
        )
    ports = (rule.get("FromPort"), rule.get("ToPort"))
    if not all(values.always_equal(p, REDIS_PORT) for p in ports):
        found.append(
            Violation(
                label,
                PORT_FROM_BACKEND,
                f"ports {rule.get('FromPort')!r}-{rule.get('ToPort')!r}: only {REDIS_PORT} exactly",
            )
        )
    return found


# -- the cache ---------------------------------------------------------------------------


def _check_replication_group(name: str, props: dict[str, Any], values: _Values) -> list[Violation]:
    found: list[Violation] = []
    token = props.get("AuthToken")
    if token is None and not props.get("UserGroupIds"):
        found.append(
            Violation(
                name,
                AUTH_REQUIRED,
                "no AuthToken (nor UserGroupIds): anyone who reaches the port can read and write",
            )
        )
    if token is not None:
        if not _is_secret_reference(token):
            found.append(
                Violation(
                    name,
                    TOKEN_FROM_SECRETS_MANAGER,
                    "AuthToken must be a "
                    f"'{DYNAMIC_SECRET}...}}}}' dynamic reference, not {token!r}",
                )
            )
        if not values.always_true(props.get("TransitEncryptionEnabled", False)):
            found.append(
                Violation(
                    name,
                    TLS_WITH_TOKEN,
                    "AuthToken set without "
                    "TransitEncryptionEnabled: true, so the token crosses the "
                    "network in clear text",
                )
            )
    port = props.get("Port")
    if port is not None and not values.always_equal(port, REDIS_PORT):
        found.append(
            Violation(
                name,
                PORT_FROM_BACKEND,
                f"Port {port!r}: the security group rules allow {REDIS_PORT} only",
            )
        )
    if not props.get("SecurityGroupIds"):
        found.append(
            Violation(
                name,
                PORT_FROM_BACKEND,
                "no SecurityGroupIds: the VPC's default security group would apply",
            )
        )
    return found + _check_backups(name, props, values)


def _check_backups(name: str, props: dict[str, Any], values: _Values) -> list[Violation]:
    if str(props.get("Engine", "redis")).lower() == "memcached":
        return []
    limit = props.get("SnapshotRetentionLimit", 0)
    low = values.minimum(limit)
    if low is not None and low < 1 and not isinstance(limit, dict):
        return [
            Violation(
                name,
                BACKUPS_ON,
                f"SnapshotRetentionLimit is {limit!r}: keep backups for at least 1 day",
            )
        ]
    if low is None or low < 1:
        return [
            Violation(
                name,
                BACKUPS_ON,
                f"SnapshotRetentionLimit {limit!r} can be "
                f"{'anything (give its parameter MinValue: 1)' if low is None else f'{low:g}'}: "
                "keep backups for at least 1 day",
            )
        ]
    return []


def _check_user(name: str, props: dict[str, Any]) -> list[Violation]:
    passwords = props.get("Passwords") or []
    plain = [p for p in passwords if not _is_secret_reference(p)]
    if plain:
        return [
            Violation(
                name,
                TOKEN_FROM_SECRETS_MANAGER,
                f"Passwords must be '{DYNAMIC_SECRET}...}}}}' dynamic references",
            )
        ]
    return []


def _is_secret_reference(node: Any) -> bool:
    """A ``{{resolve:secretsmanager:...}}`` string, literally or as an Fn::Sub / Fn::Join of one."""
    if isinstance(node, str):
        return node.startswith(DYNAMIC_SECRET)
    if isinstance(node, dict) and len(node) == 1:
        ((fn, arg),) = node.items()
        if fn == "Fn::Sub":
            text = arg[0] if isinstance(arg, list) and arg else arg
            return isinstance(text, str) and text.startswith(DYNAMIC_SECRET)
        if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
            parts = arg[1]
            return isinstance(parts, list) and bool(parts) and _is_secret_reference(parts[0])
        if fn == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
            return all(_is_secret_reference(b) or b == {"Ref": "AWS::NoValue"} for b in arg[1:])
    return False
