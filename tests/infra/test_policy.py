"""The project's policy checks: the shipped templates pass, and each rule catches its breach."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from caroud.infra import policy, templates
from caroud.infra.cli import infra_app

Body = dict[str, Any]
SECRET_REF = {"Fn::Sub": "{{resolve:secretsmanager:${AuthTokenSecret}}}"}


def rg(body: Body) -> dict[str, Any]:
    props: dict[str, Any] = body["Resources"]["ReplicationGroup"]["Properties"]
    return props


def ingress(body: Body) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = body["Resources"]["SecurityGroup"]["Properties"][
        "SecurityGroupIngress"
    ]
    return rules


def add(body: Body, name: str, kind: str, props: dict[str, Any]) -> None:
    body["Resources"][name] = {"Type": kind, "Properties": props}


def add_param(body: Body, name: str, **spec: Any) -> None:
    body["Parameters"][name] = spec


def broken(body: Body, change: Callable[[Body], None]) -> list[tuple[str, str]]:
    change(body)
    return [(v.resource, v.rule) for v in policy.check(body)]


@pytest.mark.parametrize("name", list(templates.TEMPLATES))
def test_shipped_templates_keep_every_rule(name: str) -> None:
    assert policy.check(templates.shipped(name).body) == []


# -- one failing case (or more) per rule -------------------------------------------------

OPEN = {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379}


def open_by_parameter_default(body: Body) -> None:
    add_param(body, "Cidr", Type="String", Default="0.0.0.0/0")
    ingress(body).append(OPEN | {"CidrIp": {"Ref": "Cidr"}})


@pytest.mark.parametrize(
    ("change", "resource"),
    [
        (lambda b: ingress(b).append(OPEN | {"CidrIp": "0.0.0.0/0"}), "SecurityGroupIngress[1]"),
        (lambda b: ingress(b).append(OPEN | {"CidrIpv6": "::/0"}), "SecurityGroupIngress[1]"),
        (
            lambda b: add(
                b, "Extra", "AWS::EC2::SecurityGroupIngress", OPEN | {"CidrIp": "0.0.0.0/0"}
            ),
            "Extra",
        ),
        (open_by_parameter_default, "SecurityGroupIngress[1]"),
    ],
)
def test_no_public_ingress(body: Body, change: Callable[[Body], None], resource: str) -> None:
    found = broken(body, change)
    assert any(r.endswith(resource) and rule == policy.NO_PUBLIC_INGRESS for r, rule in found)


def test_no_public_ip(body: Body) -> None:
    def change(b: Body) -> None:
        add(b, "Ip", "AWS::EC2::EIP", {"Domain": "vpc"})
        add(
            b,
            "Box",
            "AWS::EC2::Instance",
            {"NetworkInterfaces": [{"DeviceIndex": "0", "AssociatePublicIpAddress": True}]},
        )
        add(b, "Net", "AWS::EC2::Subnet", {"MapPublicIpOnLaunch": "true", "VpcId": "vpc-1"})
        maybe = {"Fn::If": ["IsProd", False, True]}
        add(b, "Dev", "AWS::EC2::Subnet", {"MapPublicIpOnLaunch": maybe, "VpcId": "vpc-1"})

    found = broken(body, change)
    assert ("Ip", policy.NO_PUBLIC_IP) in found
    assert ("Box", policy.NO_PUBLIC_IP) in found
    assert ("Net", policy.NO_PUBLIC_IP) in found
    assert ("Dev", policy.NO_PUBLIC_IP) in found


def test_a_private_subnet_is_not_public(body: Body) -> None:
    add(body, "Net", "AWS::EC2::Subnet", {"MapPublicIpOnLaunch": False, "VpcId": "vpc-1"})
    assert policy.check(body) == []


def set_rule(**changes: Any) -> Callable[[Body], None]:
    def change(b: Body) -> None:
        rule = ingress(b)[0]
        for key, value in changes.items():
            if value is None:
                rule.pop(key, None)
            else:
                rule[key] = value

    return change


@pytest.mark.parametrize(
    "change",
    [
        set_rule(FromPort=0, ToPort=65535),
        set_rule(FromPort=6380, ToPort=6380),
        set_rule(FromPort=6379, ToPort=6380),
        set_rule(IpProtocol="-1"),
        set_rule(IpProtocol="udp"),
        set_rule(SourceSecurityGroupId=None, CidrIp="10.0.0.0/8"),
        set_rule(SourceSecurityGroupId=None),
        set_rule(SourcePrefixListId="pl-123"),
        lambda b: rg(b).__setitem__("Port", 6380),
        lambda b: rg(b).pop("SecurityGroupIds"),
        lambda b: add(
            b,
            "Extra",
            "AWS::EC2::SecurityGroupIngress",
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "SourceSecurityGroupId": "sg-1"},
        ),
    ],
)
def test_6379_from_the_backend_only(body: Body, change: Callable[[Body], None]) -> None:
    assert policy.PORT_FROM_BACKEND in {rule for _, rule in broken(body, change)}


def test_port_as_text_is_still_6379(body: Body) -> None:
    set_rule(FromPort="6379", ToPort="6379", IpProtocol="6")(body)
    rg(body)["Port"] = "6379"
    assert policy.check(body) == []


def test_auth_required(body: Body) -> None:
    assert broken(body, lambda b: rg(b).pop("AuthToken")) == [
        ("ReplicationGroup", policy.AUTH_REQUIRED)
    ]


def test_rbac_user_groups_count_as_auth(body: Body) -> None:
    rg(body).pop("AuthToken")
    rg(body)["UserGroupIds"] = ["caroud-users"]
    assert policy.check(body) == []


@pytest.mark.parametrize(
    "token",
    [
        "correct-horse-battery-staple",
        {"Ref": "Token"},  # a NoEcho parameter: not enough
        "{{resolve:ssm-secure:/caroud/token:1}}",
        {"Fn::Sub": "prefix{{resolve:secretsmanager:${AuthTokenSecret}}}"},
        {"Fn::If": ["IsProd", SECRET_REF, "plain-for-dev"]},
    ],
)
def test_auth_token_from_secrets_manager(body: Body, token: Any) -> None:
    add_param(body, "Token", Type="String", NoEcho=True)
    rg(body)["AuthToken"] = token
    assert ("ReplicationGroup", policy.TOKEN_FROM_SECRETS_MANAGER) in broken(body, lambda b: None)


@pytest.mark.parametrize(
    "token",
    [
        "{{resolve:secretsmanager:arn:aws:secretsmanager:ap-southeast-1:1:secret:t}}",
        {"Fn::Sub": ["{{resolve:secretsmanager:${S}}}", {"S": {"Ref": "AuthTokenSecret"}}]},
        {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": "AuthTokenSecret"}, "}}"]]},
    ],
)
def test_dynamic_references_in_any_spelling_pass(body: Body, token: Any) -> None:
    rg(body)["AuthToken"] = token
    assert policy.check(body) == []


def test_elasticache_user_passwords_must_be_secrets(body: Body) -> None:
    props = {"Engine": "redis", "UserId": "u", "UserName": "u", "AccessString": "on ~* +@all"}
    add(body, "User", "AWS::ElastiCache::User", props | {"Passwords": ["plain-password-16ch"]})
    add(body, "Good", "AWS::ElastiCache::User", props | {"Passwords": [SECRET_REF]})
    assert policy.check(body) == [
        policy.Violation(
            "User",
            policy.TOKEN_FROM_SECRETS_MANAGER,
            "Passwords must be '{{resolve:secretsmanager:...}}' dynamic references",
        )
    ]


@pytest.mark.parametrize(
    "tls",
    [False, "false", None, {"Fn::If": ["IsProd", True, False]}, {"Ref": "Tls"}],
)
def test_tls_with_auth_token(body: Body, tls: Any) -> None:
    add_param(body, "Tls", Type="String", AllowedValues=["true", "false"], Default="true")
    if tls is None:
        rg(body).pop("TransitEncryptionEnabled")
    else:
        rg(body)["TransitEncryptionEnabled"] = tls
    assert broken(body, lambda b: None) == [("ReplicationGroup", policy.TLS_WITH_TOKEN)]


def test_tls_decided_by_parameters_passes_when_every_value_is_true(body: Body) -> None:
    add_param(body, "Tls", Type="String", AllowedValues=["true"], Default="true")
    rg(body)["TransitEncryptionEnabled"] = {"Fn::If": ["IsProd", "true", {"Ref": "Tls"}]}
    assert policy.check(body) == []


@pytest.mark.parametrize(
    "limit",
    [
        0,
        None,
        {"Ref": "Open"},  # no MinValue: may be 0
        {"Ref": "FromZero"},
        {"Ref": "ZeroAllowed"},
        {"Fn::If": ["IsProd", 7, 0]},
        "lots",
    ],
)
def test_backups_on(body: Body, limit: Any) -> None:
    add_param(body, "Open", Type="Number", Default=1)
    add_param(body, "FromZero", Type="Number", Default=1, MinValue=0)
    add_param(body, "ZeroAllowed", Type="Number", Default=1, AllowedValues=[0, 1, 7])
    if limit is None:
        rg(body).pop("SnapshotRetentionLimit")
    else:
        rg(body)["SnapshotRetentionLimit"] = limit
    assert broken(body, lambda b: None) == [("ReplicationGroup", policy.BACKUPS_ON)]


@pytest.mark.parametrize("limit", [1, "7", {"Fn::If": ["IsProd", 7, 1]}, {"Ref": "Days"}])
def test_backups_kept_for_every_parameter_value_pass(body: Body, limit: Any) -> None:
    add_param(body, "Days", Type="Number", Default=7, AllowedValues=[1, 7])
    rg(body)["SnapshotRetentionLimit"] = limit
    assert policy.check(body) == []


def test_backups_on_for_a_bare_redis_cache_cluster(body: Body) -> None:
    add(body, "Node", "AWS::ElastiCache::CacheCluster", {"Engine": "redis", "NumCacheNodes": 1})
    add(body, "Memo", "AWS::ElastiCache::CacheCluster", {"Engine": "memcached"})
    assert [(v.resource, v.rule) for v in policy.check(body)] == [("Node", policy.BACKUPS_ON)]


def test_every_rule_has_a_name_in_the_docstring() -> None:
    assert policy.__doc__ is not None
    for rule in policy.RULES:
        assert rule in policy.__doc__


# -- `caroud infra validate` -------------------------------------------------------------


def write(tmp_path: Path, body: Body, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_validate_passes_the_shipped_templates() -> None:
    result = CliRunner().invoke(infra_app, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "infra/elasticache.yaml: ok" in result.stderr
    assert "infra/elasticache-cluster.yaml: ok" in result.stderr


def test_validate_prints_one_line_per_violation_and_fails(tmp_path: Path, body: Body) -> None:
    ingress(body).append(OPEN | {"CidrIp": "0.0.0.0/0"})
    rg(body)["AuthToken"] = {"Ref": "AWS::StackName"}
    rg(body)["TransitEncryptionEnabled"] = False
    body["Parameters"]["BackupRetentionDays"]["MinValue"] = 0
    path = write(tmp_path, body)
    result = CliRunner().invoke(infra_app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    expected = [
        ("SecurityGroup.SecurityGroupIngress[1]", policy.NO_PUBLIC_INGRESS),
        ("SecurityGroup.SecurityGroupIngress[1]", policy.PORT_FROM_BACKEND),
        ("ReplicationGroup", policy.TOKEN_FROM_SECRETS_MANAGER),
        ("ReplicationGroup", policy.TLS_WITH_TOKEN),
        ("ReplicationGroup", policy.BACKUPS_ON),
    ]
    assert len(lines) == len(expected), lines
    for line, (resource, rule) in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}: {resource}: [{rule}] "), line


def test_validate_reports_cfn_lint_findings_too(tmp_path: Path, body: Body) -> None:
    rg(body)["EngineVersio"] = "7.1"
    result = CliRunner().invoke(infra_app, ["validate", str(write(tmp_path, body))])
    assert result.exit_code == 1
    assert "[E3002]" in result.stdout
