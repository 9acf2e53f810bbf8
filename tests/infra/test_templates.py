"""The shipped templates: cfn-lint clean, what the issue asks of them, and render."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from caroud.errors import InfraError, ValidationError
from caroud.infra import sizing, templates
from caroud.infra.cli import infra_app
from caroud.infra.templates import Template

ROOT = Path(__file__).resolve().parents[2]
FULL_PARAMS = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
    "BackendSecurityGroupId": "sg-0123456789abcdef0",
}


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.body["Resources"].items() if v["Type"] == kind}


def only(template: Template, kind: str) -> dict[str, Any]:
    (found,) = resources(template, kind).values()
    return found


@pytest.mark.parametrize("name", list(templates.TEMPLATES))
def test_shipped_templates_pass_cfn_lint(name: str) -> None:
    assert templates.lint(templates.shipped(name)) == []


def test_cfn_lint_reports_a_broken_template(single: Template) -> None:
    broken = single.text.replace("EngineVersion:", "EngineVersio:", 1)
    lines = templates.lint(templates.decode("broken.yaml", broken))
    assert any("[E3002]" in line and "EngineVersio" in line for line in lines), lines
    assert all(line.startswith("broken.yaml:") for line in lines)


@pytest.mark.parametrize("name", list(templates.TEMPLATES.values()))
def test_infra_directory_holds_the_packaged_templates(name: str) -> None:
    packaged = ROOT / "src" / "caroud" / "infra" / "cloudformation" / name
    assert (ROOT / "infra" / name).read_text() == packaged.read_text()


def test_subnet_group_spans_subnets_given_as_a_list(single: Template) -> None:
    group = only(single, "AWS::ElastiCache::SubnetGroup")
    assert group["Properties"]["SubnetIds"] == {"Ref": "SubnetIds"}
    assert single.parameters["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"


@pytest.mark.parametrize("name", list(templates.TEMPLATES))
def test_parameter_group_never_evicts_live_state(name: str) -> None:
    template = templates.shipped(name)
    props = only(template, "AWS::ElastiCache::ParameterGroup")["Properties"]
    assert props["CacheParameterGroupFamily"] == "redis7"
    assert props["Properties"]["maxmemory-policy"] == {"Ref": "EvictionPolicy"}
    assert props["Properties"]["reserved-memory-percent"] == str(
        int(sizing.RESERVED_MEMORY_PERCENT)
    )
    policy = template.parameters["EvictionPolicy"]
    assert policy["Default"] == "noeviction"
    assert set(policy["AllowedValues"]) == {"noeviction", "volatile-ttl"}
    expected = "yes" if name == "cluster" else "no"
    assert props["Properties"]["cluster-enabled"] == expected
    assert "allkeys-lru" in template.text  # the comment saying why not


def test_security_group_allows_6379_from_the_backend_only(single: Template) -> None:
    group = only(single, "AWS::EC2::SecurityGroup")["Properties"]
    assert group["SecurityGroupIngress"] == [
        {
            "Description": "Caroud backend (EC2/ECS) to Redis",
            "IpProtocol": "tcp",
            "FromPort": 6379,
            "ToPort": 6379,
            "SourceSecurityGroupId": {"Ref": "BackendSecurityGroupId"},
        }
    ]
    assert single.parameters["BackendSecurityGroupId"]["Type"] == "AWS::EC2::SecurityGroup::Id"


def test_replication_group_settings(single: Template) -> None:
    props = only(single, "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert props["Engine"] == "redis"
    assert props["EngineVersion"] == "7.1"
    assert single.parameters["NodeType"]["Default"] == "cache.t3.micro"
    assert "NumNodeGroups" not in props  # cluster mode disabled
    assert props["NumCacheClusters"] == {"Fn::If": ["IsProd", 2, 1]}
    assert props["AutomaticFailoverEnabled"] == {"Fn::If": ["IsProd", True, False]}
    assert props["MultiAZEnabled"] == {"Fn::If": ["IsProd", True, False]}
    assert single.body["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Environment"}, "prod"]}
    assert props["AtRestEncryptionEnabled"] is True
    assert props["TransitEncryptionEnabled"] is True
    assert props["AuthToken"] == {"Fn::Sub": "{{resolve:secretsmanager:${AuthTokenSecret}}}"}
    assert props["SnapshotRetentionLimit"] == {"Ref": "BackupRetentionDays"}
    assert single.parameters["BackupRetentionDays"]["Default"] == 1
    assert single.parameters["BackupWindow"]["Default"] == "03:00-04:00"
    assert single.parameters["MaintenanceWindow"]["Default"] == "sun:04:00-sun:05:00"


@pytest.mark.parametrize("name", list(templates.TEMPLATES))
def test_auth_token_is_generated_in_secrets_manager(name: str) -> None:
    secret = only(templates.shipped(name), "AWS::SecretsManager::Secret")["Properties"]
    generate = secret["GenerateSecretString"]
    assert 16 <= generate["PasswordLength"] <= 128
    assert generate["ExcludePunctuation"] is True
    assert generate["IncludeSpace"] is False
    assert "SecretStringTemplate" not in generate  # a plain string: the token itself


def test_outputs_name_the_endpoints_and_the_secret(single: Template) -> None:
    outputs = single.body["Outputs"]
    rg = "ReplicationGroup"
    assert outputs["PrimaryEndpointAddress"]["Value"] == {
        "Fn::GetAtt": [rg, "PrimaryEndPoint.Address"]
    }
    assert outputs["PrimaryEndpointPort"]["Value"] == {"Fn::GetAtt": [rg, "PrimaryEndPoint.Port"]}
    assert outputs["ReaderEndpointAddress"]["Value"] == {
        "Fn::GetAtt": [rg, "ReaderEndPoint.Address"]
    }
    assert outputs["AuthTokenSecretArn"]["Value"] == {"Ref": "AuthTokenSecret"}


GUIDE_ALARMS = {
    "CPUUtilization": 75,
    "EngineCPUUtilization": 75,
    "DatabaseMemoryUsagePercentage": 85,
    "CurrConnections": 50000,
    "Evictions": 0,
    "GetTypeCmdsLatency": 1000,
    "SetTypeCmdsLatency": 1000,
    "EvalBasedCmdsLatency": 1000,
}


def alarm_metric(alarm: dict[str, Any]) -> str:
    props = alarm["Properties"]
    if "MetricName" in props:
        return str(props["MetricName"])
    (name,) = {
        m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m
    }
    return str(name)


def test_alarms_watch_every_node_at_the_guide_thresholds(single: Template) -> None:
    alarms = resources(single, "AWS::CloudWatch::Alarm")
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for alarm in alarms.values():
        props = alarm["Properties"]
        (dimension,) = props["Dimensions"]
        node = dimension["Value"]["Fn::Sub"].rsplit("-", 1)[1]
        seen[(alarm_metric(alarm), node)] = alarm
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["Threshold"] == GUIDE_ALARMS[props["MetricName"]]
        no_topic = {"Ref": "AWS::NoValue"}
        assert props["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], no_topic]
        }
    assert set(seen) == {(m, n) for m in GUIDE_ALARMS for n in ("001", "002")}
    assert all(seen[(m, "002")].get("Condition") == "IsProd" for m in GUIDE_ALARMS)
    assert all("Condition" not in seen[(m, "001")] for m in GUIDE_ALARMS)


def test_cluster_alarms_cover_every_node_the_parameters_allow(cluster: Template) -> None:
    shards = int(cluster.parameters["NumNodeGroups"]["MaxValue"])
    nodes = 1 + int(cluster.parameters["ReplicasPerNodeGroup"]["MaxValue"])
    wanted = {
        f"${{ReplicationGroup}}-{s:04d}-{n:03d}"
        for s in range(1, shards + 1)
        for n in range(1, nodes + 1)
    }
    alarms = resources(cluster, "AWS::CloudWatch::Alarm")
    assert {alarm_metric(a) for a in alarms.values()} == set(GUIDE_ALARMS)
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        stats = [m for m in props["Metrics"] if "MetricStat" in m]
        (expression,) = [m for m in props["Metrics"] if "Expression" in m]
        assert len(props["Metrics"]) <= 10, name  # CloudWatch's limit for one alarm
        covered = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Fn::Sub"] for m in stats}
        assert covered == wanted, name
        assert set(re.findall(r"s\dn\d", expression["Expression"])) == {m["Id"] for m in stats}
        assert props["Threshold"] == GUIDE_ALARMS[alarm_metric(alarm)]


def test_cluster_variant_shape(cluster: Template) -> None:
    props = only(cluster, "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert props["NumNodeGroups"] == {"Ref": "NumNodeGroups"}
    assert props["ReplicasPerNodeGroup"] == {"Ref": "ReplicasPerNodeGroup"}
    assert props["AutomaticFailoverEnabled"] is True
    assert "ConfigurationEndpointAddress" in cluster.body["Outputs"]


@pytest.mark.parametrize("name", list(templates.TEMPLATES))
def test_node_types_are_the_ones_sizing_knows(name: str) -> None:
    allowed = templates.shipped(name).parameters["NodeType"]["AllowedValues"]
    assert allowed == [n.name for n in sizing.NODE_TYPES]


# -- render ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_render_fills_parameters_and_stays_a_valid_template(single: Template, fmt: str) -> None:
    values = FULL_PARAMS | {"Environment": "prod", "BackupRetentionDays": "7"}
    text = templates.render(templates.fill(single, values), fmt)
    again = templates.decode(f"rendered.{fmt}", text)
    assert again.parameters["Environment"]["Default"] == "prod"
    assert again.parameters["BackupRetentionDays"]["Default"] == 7
    assert again.parameters["VpcId"]["Default"] == FULL_PARAMS["VpcId"]
    assert again.body["Resources"] == single.body["Resources"]
    assert templates.lint(again) == []
    assert templates.validate(again) == []
    parsed = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert parsed["Parameters"]["Environment"]["Default"] == "prod"


def test_render_leaves_the_template_itself_alone(single: Template) -> None:
    templates.fill(single, {"Environment": "prod"})
    assert single.parameters["Environment"]["Default"] == "dev"


@pytest.mark.parametrize(
    ("values", "field", "text"),
    [
        ({"Nope": "1"}, "param", "has no parameter 'Nope'"),
        ({"Environment": "staging"}, "Environment", "not one of dev, prod"),
        ({"NodeType": "cache.t2.micro"}, "NodeType", "not one of"),
        ({"EvictionPolicy": "allkeys-lru"}, "EvictionPolicy", "not one of"),
        ({"BackupRetentionDays": "0"}, "BackupRetentionDays", "outside [1, 35]"),
        ({"BackupRetentionDays": "x"}, "BackupRetentionDays", "not a number"),
        ({"ClusterName": "Caroud_Redis"}, "ClusterName", "does not match lowercase"),
        ({"BackupWindow": "3am"}, "BackupWindow", "does not match"),
    ],
)
def test_bad_parameters_are_refused_by_name(
    single: Template, values: dict[str, str], field: str, text: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(text)) as caught:
        templates.fill(single, values)
    assert caught.value.field == field


def test_assignments_need_an_equals_sign() -> None:
    assert templates.parse_assignments(["A=1", " B = x=y "]) == {"A": "1", "B": "x=y"}
    with pytest.raises(ValidationError, match="expected NAME=VALUE"):
        templates.parse_assignments(["Environment"])


def test_missing_parameters_are_those_without_defaults(single: Template) -> None:
    assert templates.missing_parameters(single, {}) == list(FULL_PARAMS)
    assert templates.missing_parameters(single, FULL_PARAMS) == []


def test_render_formats(single: Template) -> None:
    with pytest.raises(ValidationError, match="not json or yaml"):
        templates.render(single.body, "toml")


def test_load_by_name_or_path(tmp_path: Path, single: Template) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(single.body))
    assert templates.load(path).body == single.body
    assert templates.load("cluster").name == "infra/elasticache-cluster.yaml"
    with pytest.raises(InfraError, match="cannot read the template"):
        templates.load(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    with pytest.raises(InfraError, match="is not a CloudFormation template"):
        templates.load(tmp_path / "list.yaml")
    with pytest.raises(ValidationError, match="not one of single, cluster"):
        templates.shipped("triple")


def test_render_command_prints_json_or_yaml() -> None:
    runner = CliRunner()
    as_json = runner.invoke(infra_app, ["render", "-f", "json", "-p", "Environment=prod"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["Parameters"]["Environment"]["Default"] == "prod"
    as_yaml = runner.invoke(infra_app, ["render", "-t", "cluster", "-p", "NumNodeGroups=3"])
    assert as_yaml.exit_code == 0, as_yaml.output
    assert yaml.safe_load(as_yaml.stdout)["Parameters"]["NumNodeGroups"]["Default"] == 3
    refused = runner.invoke(infra_app, ["render", "-t", "cluster", "-p", "Environment=prod"])
    assert isinstance(refused.exception, ValidationError)
