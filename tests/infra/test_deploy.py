"""deploy / endpoint / status against moto where it models the service, Stubber where not.

moto's CloudFormation does not create ElastiCache replication groups or Secrets Manager
secrets from a template (it skips resource types it does not model), so every
CloudFormation call is answered by a Stubber; ElastiCache, Secrets Manager and CloudWatch
calls go to moto, and botocore checks each call against the real API's shapes first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from botocore.stub import Stubber
from moto import mock_aws
from typer.testing import CliRunner

from caroud.errors import InfraError, NotFoundError, ValidationError
from caroud.infra import deploy as aws
from caroud.infra.cli import infra_app
from caroud.infra.templates import Template

REGION = "ap-southeast-1"  # as the autouse aws_env fixture sets
STACK = "caroud-redis"
STACK_ID = f"arn:aws:cloudformation:{REGION}:123456789012:stack/{STACK}/1"
T = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOST = "master.caroud-redis.abc123.apse1.cache.amazonaws.com"
TOKEN = "Tok3nWith64LettersAndDigitsXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
NEEDED = {"VpcId": "vpc-1", "SubnetIds": "subnet-a,subnet-b", "BackendSecurityGroupId": "sg-1"}

Stub = tuple[Any, Stubber]


def stack(status: str, outputs: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "StackName": STACK,
        "StackId": STACK_ID,
        "CreationTime": T,
        "StackStatus": status,
    }
    if outputs is not None:
        found["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
    return {"Stacks": [found | extra]}


def event(n: int, resource: str, status: str, reason: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {
        "StackId": STACK_ID,
        "EventId": f"e{n}",
        "StackName": STACK,
        "LogicalResourceId": resource,
        "ResourceType": "AWS::ElastiCache::ReplicationGroup",
        "Timestamp": T,
        "ResourceStatus": status,
    }
    if reason:
        found["ResourceStatusReason"] = reason
    return found


def events(*newest_first: dict[str, Any]) -> dict[str, Any]:
    return {"StackEvents": list(newest_first)}


def no_stack(stub: Stubber) -> None:
    stub.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message=f"Stack with id {STACK} does not exist",
        expected_params={"StackName": STACK},
    )


OUTPUTS = {
    "PrimaryEndpointAddress": HOST,
    "PrimaryEndpointPort": "6379",
    "ReaderEndpointAddress": "replica.caroud-redis.abc123.apse1.cache.amazonaws.com",
    "ReaderEndpointPort": "6379",
    "AuthTokenSecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:caroud-redis/t",
    "ReplicationGroupId": STACK,
}


def outputs(
    stub: Stubber, status: str = "CREATE_COMPLETE", found: dict[str, str] = OUTPUTS
) -> None:
    stub.add_response("describe_stacks", stack(status), {"StackName": STACK})
    stub.add_response("describe_stacks", stack(status, found), {"StackName": STACK})


# -- deploy ------------------------------------------------------------------------------


def test_deploy_creates_the_stack_and_reports_events_in_order(
    cfn_stub: Stub, single: Template
) -> None:
    cfn, stub = cfn_stub
    no_stack(stub)
    stub.add_response(
        "create_stack",
        {"StackId": STACK_ID},
        {
            "StackName": STACK,
            "TemplateBody": single.text,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in NEEDED.items()],
            "Tags": [{"Key": "app", "Value": "caroud"}],
        },
    )
    first = [event(2, "SubnetGroup", "CREATE_IN_PROGRESS"), event(1, STACK, "CREATE_IN_PROGRESS")]
    stub.add_response("describe_stack_events", events(*first), {"StackName": STACK})
    stub.add_response("describe_stacks", stack("CREATE_IN_PROGRESS"), {"StackName": STACK})
    done = [event(4, STACK, "CREATE_COMPLETE"), event(3, "SubnetGroup", "CREATE_COMPLETE")]
    stub.add_response("describe_stack_events", events(*done, *first), {"StackName": STACK})
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE"), {"StackName": STACK})
    outputs(stub)
    seen: list[aws.StackEvent] = []
    sleeps: list[float] = []
    result = aws.deploy(cfn, STACK, single, NEEDED, on_event=seen.append, sleep=sleeps.append)
    assert [e.event_id for e in seen] == ["e1", "e2", "e3", "e4"]
    assert sleeps == [aws.POLL_S]
    assert result == aws.DeployResult(STACK, "created", "CREATE_COMPLETE", OUTPUTS)
    assert (
        str(seen[1])
        == "12:00:00 SubnetGroup (AWS::ElastiCache::ReplicationGroup) CREATE_IN_PROGRESS"
    )


def test_update_keeps_previous_values_of_parameters_not_given(
    cfn_stub: Stub, single: Template
) -> None:
    cfn, stub = cfn_stub
    current = [{"ParameterKey": k, "ParameterValue": v} for k, v in NEEDED.items()]
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE"), {"StackName": STACK})
    stub.add_response(
        "describe_stack_events", events(event(9, STACK, "CREATE_COMPLETE")), {"StackName": STACK}
    )
    stub.add_response(
        "describe_stacks", stack("CREATE_COMPLETE", Parameters=current), {"StackName": STACK}
    )
    stub.add_response(
        "update_stack",
        {"StackId": STACK_ID},
        {
            "StackName": STACK,
            "TemplateBody": single.text,
            "Parameters": [
                {"ParameterKey": "Environment", "ParameterValue": "prod"},
                *({"ParameterKey": k, "UsePreviousValue": True} for k in NEEDED),
            ],
            "Tags": [{"Key": "app", "Value": "caroud"}],
        },
    )
    later = [event(11, STACK, "UPDATE_COMPLETE"), event(10, "ReplicationGroup", "UPDATE_COMPLETE")]
    stub.add_response(
        "describe_stack_events",
        events(*later, event(9, STACK, "CREATE_COMPLETE")),
        {"StackName": STACK},
    )
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": STACK})
    outputs(stub, "UPDATE_COMPLETE")
    seen: list[aws.StackEvent] = []
    result = aws.deploy(cfn, STACK, single, {"Environment": "prod"}, on_event=seen.append)
    assert [e.event_id for e in seen] == ["e10", "e11"]  # nothing from before the update
    assert result.action == "updated"


def test_nothing_to_update_is_not_an_error(cfn_stub: Stub, single: Template) -> None:
    cfn, stub = cfn_stub
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": STACK})
    stub.add_response("describe_stack_events", events(), {"StackName": STACK})
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": STACK})
    stub.add_client_error(
        "update_stack",
        service_error_code="ValidationError",
        service_message="No updates are to be performed.",
    )
    outputs(stub, "UPDATE_COMPLETE")
    result = aws.deploy(cfn, STACK, single, {})
    assert result.action == "unchanged"
    assert result.outputs == OUTPUTS


def test_a_failed_create_names_the_resources_that_failed(cfn_stub: Stub, single: Template) -> None:
    cfn, stub = cfn_stub
    no_stack(stub)
    stub.add_response("create_stack", {"StackId": STACK_ID})
    failed = [
        event(3, STACK, "ROLLBACK_COMPLETE"),
        event(2, "ReplicationGroup", "CREATE_FAILED", "Cache node type not supported"),
        event(1, STACK, "CREATE_IN_PROGRESS"),
    ]
    stub.add_response("describe_stack_events", events(*failed))
    stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"))
    with pytest.raises(InfraError) as caught:
        aws.deploy(cfn, STACK, single, NEEDED, sleep=lambda s: None)
    assert str(caught.value) == (
        f"stack {STACK!r} ended ROLLBACK_COMPLETE: ReplicationGroup: Cache node type not supported"
    )


@pytest.mark.parametrize(
    ("status", "message"),
    [("UPDATE_IN_PROGRESS", "is busy"), ("ROLLBACK_COMPLETE", "delete it")],
)
def test_a_stack_that_cannot_be_updated_now_is_refused(
    cfn_stub: Stub, single: Template, status: str, message: str
) -> None:
    cfn, stub = cfn_stub
    stub.add_response("describe_stacks", stack(status))
    with pytest.raises(InfraError, match=message):
        aws.deploy(cfn, STACK, single, NEEDED)


def test_a_new_stack_needs_its_required_parameters(cfn_stub: Stub, single: Template) -> None:
    cfn, stub = cfn_stub
    no_stack(stub)
    with pytest.raises(ValidationError, match="needs VpcId, SubnetIds, BackendSecurityGroupId"):
        aws.deploy(cfn, STACK, single, {})


def test_a_template_too_big_for_the_api_is_refused_before_any_call(cfn_stub: Stub) -> None:
    cfn, _ = cfn_stub
    big = Template("big.yaml", "# " + "x" * aws.MAX_TEMPLATE_BODY, {"Resources": {}})
    with pytest.raises(InfraError, match="CloudFormation takes at most 51200"):
        aws.deploy(cfn, STACK, big, {})


def test_waiting_gives_up_after_the_timeout(cfn_stub: Stub) -> None:
    cfn, stub = cfn_stub
    for _ in range(2):
        stub.add_response("describe_stack_events", events())
        stub.add_response("describe_stacks", stack("CREATE_IN_PROGRESS"))
    ticks = iter([0.0, 5.0, 11.0])
    with pytest.raises(InfraError, match="still CREATE_IN_PROGRESS after 10 s"):
        aws.wait(
            cfn,
            STACK,
            None,
            lambda e: None,
            timeout_s=10,
            sleep=lambda s: None,
            clock=lambda: next(ticks),
        )


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (NoCredentialsError(), "no AWS credentials: set AWS_PROFILE"),
        (NoRegionError(), "no AWS region: pass --region"),
        (
            ClientError({"Error": {"Code": "AccessDenied", "Message": "nope"}}, "CreateStack"),
            "creating failed: AccessDenied: nope (the IAM identity lacks this permission)",
        ),
    ],
)
def test_aws_errors_become_infra_errors_saying_what_to_check(
    error: Exception, message: str
) -> None:
    with pytest.raises(InfraError, match=re.escape(message)), aws.aws_errors("creating"):
        raise error


def test_a_session_without_a_region_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(InfraError, match="no AWS region"):
        aws.aws_clients()


# -- endpoint ----------------------------------------------------------------------------


@mock_aws
def test_endpoint_reads_the_token_only_when_asked(cfn_stub: Stub) -> None:
    cfn, stub = cfn_stub
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="caroud-redis/auth-token", SecretString=TOKEN)["ARN"]
    outputs(stub, found=OUTPUTS | {"AuthTokenSecretArn": arn})
    found = aws.endpoint(cfn, STACK)
    assert (found.host, found.port, found.secret_arn, found.token) == (HOST, 6379, arn, None)
    assert found.env_line() == f"CAROUD_REDIS_URL=rediss://:***@{HOST}:6379"
    with pytest.raises(InfraError, match="not read"):
        found.env_line(show_token=True)
    read = aws.read_token(secrets, found)
    assert read.env_line(show_token=True) == f"CAROUD_REDIS_URL=rediss://:{TOKEN}@{HOST}:6379"
    assert read.env_line() == found.env_line()
    assert TOKEN not in repr(read)


@mock_aws
def test_a_missing_secret_is_an_infra_error() -> None:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    found = aws.Endpoint(HOST, 6379, f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone")
    with pytest.raises(InfraError, match="ResourceNotFoundException"):
        aws.read_token(secrets, found)


def test_endpoint_of_a_cluster_mode_stack(cfn_stub: Stub) -> None:
    cfn, stub = cfn_stub
    found = {"ConfigurationEndpointAddress": "clustercfg.x", "ConfigurationEndpointPort": "6379"}
    outputs(stub, found=found | {"AuthTokenSecretArn": "arn:s"})
    got = aws.endpoint(cfn, STACK)
    assert (got.host, got.cluster_mode, got.reader_host) == ("clustercfg.x", True, None)


def test_endpoint_of_a_stack_that_does_not_exist(cfn_stub: Stub) -> None:
    cfn, stub = cfn_stub
    no_stack(stub)
    with pytest.raises(NotFoundError, match="no CloudFormation stack 'caroud-redis'"):
        aws.endpoint(cfn, STACK)


@pytest.fixture
def fake_clients(monkeypatch: pytest.MonkeyPatch, cfn_stub: Stub) -> Iterator[tuple[Stubber, Any]]:
    """`caroud infra` commands get the stubbed CloudFormation client and moto for the rest."""
    cfn, stub = cfn_stub
    mock = mock_aws()
    mock.start()
    secrets = boto3.client("secretsmanager", region_name=REGION)
    elasticache = boto3.client("elasticache", region_name=REGION)
    monkeypatch.setattr(
        aws, "aws_clients", lambda region, profile: aws.AwsClients(cfn, secrets, elasticache)
    )
    yield stub, secrets
    mock.stop()


def test_endpoint_command_prints_the_token_only_with_show_token(
    fake_clients: tuple[Stubber, Any],
) -> None:
    stub, secrets = fake_clients
    arn = secrets.create_secret(Name="caroud-redis/auth-token", SecretString=TOKEN)["ARN"]
    for _ in range(2):
        outputs(stub, found=OUTPUTS | {"AuthTokenSecretArn": arn})
    runner = CliRunner()
    hidden = runner.invoke(infra_app, ["endpoint", "--stack", STACK])
    assert hidden.exit_code == 0, hidden.output
    assert hidden.stdout == f"CAROUD_REDIS_URL=rediss://:***@{HOST}:6379\n"
    assert TOKEN not in hidden.output
    assert f"primary endpoint  {HOST}:6379" in hidden.stderr
    shown = runner.invoke(infra_app, ["endpoint", "--stack", STACK, "--show-token"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == f"CAROUD_REDIS_URL=rediss://:{TOKEN}@{HOST}:6379\n"
    assert TOKEN not in shown.stderr


# -- status ------------------------------------------------------------------------------


def create_group_from_template(elasticache: Any, single: Template, env: str = "prod") -> None:
    """The template's subnet group and replication group, as the API calls CloudFormation makes."""
    res = single.body["Resources"]
    elasticache.create_cache_subnet_group(
        CacheSubnetGroupName="caroud-subnets",
        CacheSubnetGroupDescription="private subnets",
        SubnetIds=["subnet-a", "subnet-b"],
    )
    props = res["ReplicationGroup"]["Properties"]
    defaults = {k: v.get("Default") for k, v in single.parameters.items()}

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value:
            return defaults.get(value["Ref"], value["Ref"])
        if isinstance(value, dict) and "Fn::If" in value:
            return value["Fn::If"][1 if env == "prod" else 2]
        return value

    call = {k: resolve(v) for k, v in props.items() if k not in ("Tags", "NotificationTopicArn")}
    call |= {
        "CacheParameterGroupName": "default.redis7",
        "CacheSubnetGroupName": "caroud-subnets",
        "SecurityGroupIds": ["sg-0123"],
        "AuthToken": TOKEN,
    }
    elasticache.create_replication_group(**call)


@mock_aws
def test_status_of_a_group_made_with_the_template_settings(single: Template) -> None:
    elasticache = boto3.client("elasticache", region_name=REGION)
    create_group_from_template(elasticache, single)
    found = aws.status(elasticache, "caroud-redis")
    assert found.replication_group_id == "caroud-redis"
    assert found.status == "available"
    assert found.node_type == "cache.t3.micro"
    assert (found.multi_az, found.automatic_failover) == ("enabled", "enabled")
    assert found.transit_encryption and found.at_rest_encryption and found.auth_token
    assert (found.snapshot_retention_days, found.snapshot_window) == (1, "03:00-04:00")
    assert found.primary is not None and found.primary.endswith(":6379")
    assert not found.cluster_mode


@mock_aws
def test_status_of_an_unknown_group() -> None:
    elasticache = boto3.client("elasticache", region_name=REGION)
    with pytest.raises(NotFoundError, match="no replication group 'nope'"):
        aws.status(elasticache, "nope")


def test_status_counts_replicas_and_reads_every_endpoint() -> None:
    # moto keeps one member whatever NumCacheClusters says: a real-shaped reply, stubbed.
    elasticache = boto3.client("elasticache", region_name=REGION)
    reply = {
        "ReplicationGroups": [
            {
                "ReplicationGroupId": "caroud-redis",
                "Status": "available",
                "CacheNodeType": "cache.t3.small",
                "MemberClusters": ["caroud-redis-001", "caroud-redis-002"],
                "NodeGroups": [
                    {
                        "NodeGroupId": "0001",
                        "PrimaryEndpoint": {"Address": "primary.x", "Port": 6379},
                        "ReaderEndpoint": {"Address": "reader.x", "Port": 6379},
                    }
                ],
                "MultiAZ": "enabled",
                "AutomaticFailover": "enabled",
                "ClusterEnabled": False,
            }
        ]
    }
    with Stubber(elasticache) as stub:
        stub.add_response(
            "describe_replication_groups", reply, {"ReplicationGroupId": "caroud-redis"}
        )
        found = aws.status(elasticache, "caroud-redis")
    assert (found.shards, found.replicas) == (1, 1)
    assert (found.primary, found.reader) == ("primary.x:6379", "reader.x:6379")
    assert found.members == ("caroud-redis-001", "caroud-redis-002")


def test_status_command_finds_the_group_through_the_stack(
    fake_clients: tuple[Stubber, Any], single: Template
) -> None:
    stub, _ = fake_clients
    create_group_from_template(boto3.client("elasticache", region_name=REGION), single)
    outputs(stub)
    result = CliRunner().invoke(infra_app, ["status", "--stack", STACK])
    assert result.exit_code == 0, result.output
    assert re.search(r"^replication_group_id\s+caroud-redis$", result.stdout, re.M)
    assert re.search(r"^node_type\s+cache.t3.micro$", result.stdout, re.M)


# -- what the template asks of CloudWatch and Secrets Manager, checked by their APIs ------


@mock_aws
def test_alarm_definitions_are_valid_put_metric_alarm_calls(single: Template) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    topic = f"arn:aws:sns:{REGION}:123456789012:caroud-alarms"
    alarms = {
        k: v for k, v in single.body["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"
    }
    for alarm in alarms.values():
        props = dict(alarm["Properties"])
        props["AlarmName"] = props["AlarmName"]["Fn::Sub"].replace("${ClusterName}", STACK)
        for d in props["Dimensions"]:
            d["Value"] = d["Value"]["Fn::Sub"].replace("${ReplicationGroup}", STACK)
        props["AlarmActions"] = props["OKActions"] = [topic]
        cloudwatch.put_metric_alarm(**props)
    described = cloudwatch.describe_alarms()["MetricAlarms"]
    assert len(described) == len(alarms)
    memory = next(a for a in described if a["AlarmName"] == f"{STACK}-001-memory-over-85")
    assert (memory["MetricName"], memory["Threshold"]) == ("DatabaseMemoryUsagePercentage", 85.0)
    assert memory["Dimensions"] == [{"Name": "CacheClusterId", "Value": f"{STACK}-001"}]


@mock_aws
def test_the_generated_token_is_one_elasticache_accepts(single: Template) -> None:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    spec = single.body["Resources"]["AuthTokenSecret"]["Properties"]["GenerateSecretString"]
    token = secrets.get_random_password(**spec)["RandomPassword"]
    # ElastiCache: 16-128 printable characters, none of space, ", /, @
    assert 16 <= len(token) <= 128
    assert token.isprintable() and not set(token) & set(' "/@')


def test_deploy_command_refuses_a_template_that_fails_validation(
    fake_clients: tuple[Stubber, Any], tmp_path: Path, single: Template
) -> None:
    body = json.loads(json.dumps(single.body))
    body["Resources"]["ReplicationGroup"]["Properties"]["TransitEncryptionEnabled"] = False
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(body))
    result = CliRunner().invoke(infra_app, ["deploy", "--template", str(path), "-p", "VpcId=vpc-1"])
    assert result.exit_code == 1
    assert "[tls-with-auth-token]" in result.stdout
    assert "not deployed" in result.stderr  # and no AWS call: the Stubber has none queued


def test_deploy_command_creates_and_prints_the_outputs(
    fake_clients: tuple[Stubber, Any], single: Template
) -> None:
    stub, _ = fake_clients
    no_stack(stub)
    stub.add_response("create_stack", {"StackId": STACK_ID})
    done = [event(2, STACK, "CREATE_COMPLETE"), event(1, "SubnetGroup", "CREATE_COMPLETE")]
    stub.add_response("describe_stack_events", events(*done))
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE"))
    outputs(stub)
    args = ["deploy", "--stack", STACK, "--poll", "0"]
    for key, value in NEEDED.items():
        args += ["-p", f"{key}={value}"]
    result = CliRunner().invoke(infra_app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == OUTPUTS
    assert f"stack {STACK}: created (CREATE_COMPLETE)" in result.stderr
    assert "SubnetGroup (AWS::ElastiCache::ReplicationGroup) CREATE_COMPLETE" in result.stderr
