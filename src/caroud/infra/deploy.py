"""The AWS edge of ``caroud infra``: deploy the stack, read its endpoint and the token, status.

Every function is given the boto3 clients it calls (built once by :func:`aws_clients`), so
tests pass clients backed by moto or botocore's Stubber and nothing reaches AWS. Every
AWS failure becomes an :class:`~caroud.errors.InfraError` naming the call and what to
check. The AUTH token is read only when asked for, and never logged: :class:`Endpoint`
keeps it out of its ``repr`` and prints it as ``***`` unless told otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from caroud.errors import InfraError, NotFoundError, ValidationError
from caroud.infra.templates import Template, missing_parameters

DEFAULT_STACK = "caroud-redis"
POLL_S = 5.0
TIMEOUT_S = 3600.0
"""Creating a Multi-AZ replication group takes 10-20 minutes; an hour means something is stuck."""
REDACTED = "***"
OK_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
NO_UPDATES = "No updates are to be performed"
MAX_TEMPLATE_BODY = 51_200
"""Bytes of TemplateBody that CreateStack / UpdateStack accept."""

Client = Any
"""A boto3 client (boto3 ships no type stubs)."""


@dataclass(frozen=True)
class AwsClients:
    """The three services ``caroud infra`` talks to."""

    cloudformation: Client
    secretsmanager: Client
    elasticache: Client


def aws_clients(region: str | None = None, profile: str | None = None) -> AwsClients:
    """Clients from one boto3 session (the usual credential chain, ``profile``, ``region``)."""
    import boto3

    with aws_errors("opening an AWS session"):
        session = boto3.Session(region_name=region, profile_name=profile)
        return AwsClients(
            session.client("cloudformation"),
            session.client("secretsmanager"),
            session.client("elasticache"),
        )


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """botocore's errors as :class:`InfraError` with what to check."""
    from botocore import exceptions as bx

    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as e:
        raise InfraError(
            f"{action}: no AWS credentials: set AWS_PROFILE (or --profile), or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from e
    except bx.NoRegionError as e:
        raise InfraError(
            f"{action}: no AWS region: pass --region (the guide's is ap-southeast-1) or set "
            "AWS_DEFAULT_REGION"
        ) from e
    except bx.ProfileNotFound as e:
        raise InfraError(f"{action}: {e}: check ~/.aws/config or --profile") from e
    except bx.EndpointConnectionError as e:
        raise InfraError(f"{action}: cannot reach AWS ({e}): check the network and region") from e
    except bx.ClientError as e:
        raise InfraError(f"{action} failed: {_client_error_text(e)}") from e
    except bx.BotoCoreError as e:
        raise InfraError(f"{action} failed: {e}") from e


def _client_error_text(error: Any) -> str:
    info = error.response.get("Error", {})
    code, message = str(info.get("Code", "?")), str(info.get("Message", ""))
    hint = ""
    if "AccessDenied" in code or "UnauthorizedOperation" in code:
        hint = " (the IAM identity lacks this permission)"
    return f"{code}: {message}{hint}"


def _error_code(error: Exception) -> tuple[str, str]:
    info = getattr(error, "response", {}).get("Error", {})
    return str(info.get("Code", "")), str(info.get("Message", ""))


# -- stacks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StackEvent:
    """One line of a stack's event log."""

    event_id: str
    timestamp: str
    resource: str
    resource_type: str
    status: str
    reason: str

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")

    def __str__(self) -> str:
        reason = f" - {self.reason}" if self.reason else ""
        return f"{self.timestamp} {self.resource} ({self.resource_type}) {self.status}{reason}"


@dataclass(frozen=True, slots=True)
class DeployResult:
    """How a deploy ended: ``created``, ``updated`` or ``unchanged``, and the stack's outputs."""

    stack: str
    action: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)


def stack_status(cfn: Client, stack: str) -> str | None:
    """The stack's status, or None if there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        with aws_errors(f"describing stack {stack!r}"):
            reply = cfn.describe_stacks(StackName=stack)
    except InfraError as e:
        cause = e.__cause__
        if isinstance(cause, ClientError) and "does not exist" in _error_code(cause)[1]:
            return None
        raise
    return str(reply["Stacks"][0]["StackStatus"])


def stack_outputs(cfn: Client, stack: str) -> dict[str, str]:
    """The stack's outputs by key; :class:`NotFoundError` if there is no such stack."""
    if stack_status(cfn, stack) is None:
        raise NotFoundError(f"no CloudFormation stack {stack!r} in this region: deploy it first")
    with aws_errors(f"describing stack {stack!r}"):
        reply = cfn.describe_stacks(StackName=stack)
    outputs = reply["Stacks"][0].get("Outputs") or []
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in outputs}


def deploy(
    cfn: Client,
    stack: str,
    template: Template,
    parameters: Mapping[str, str],
    *,
    on_event: Callable[[StackEvent], None] = lambda event: None,
    poll_s: float = POLL_S,
    timeout_s: float = TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeployResult:
    """Create the stack, or update it, and wait until it settles, reporting each new event.

    Parameters not given keep their previous value on an update. :class:`InfraError` if the
    stack is busy, was left in ROLLBACK_COMPLETE, or ends in anything but a ``*_COMPLETE``
    success (the message quotes the failed resources' reasons).
    """
    size = len(template.text.encode("utf-8"))
    if size > MAX_TEMPLATE_BODY:
        raise InfraError(
            f"{template.name} is {size} bytes; CloudFormation takes at most {MAX_TEMPLATE_BODY} "
            "in the request: shorten it, or upload it to S3 and deploy with the AWS CLI"
        )
    status = stack_status(cfn, stack)
    if status is not None and status.endswith("_IN_PROGRESS"):
        raise InfraError(f"stack {stack!r} is busy ({status}): wait for it, then deploy again")
    if status == "ROLLBACK_COMPLETE":
        raise InfraError(
            f"stack {stack!r} failed to create earlier and is ROLLBACK_COMPLETE, which cannot be "
            f"updated: delete it (aws cloudformation delete-stack --stack-name {stack}) and deploy"
        )
    if status is None:
        missing = missing_parameters(template, parameters)
        if missing:
            raise ValidationError("param", f"a new stack needs {', '.join(missing)} (NAME=VALUE)")
        seen = None
        with aws_errors(f"creating stack {stack!r}"):
            cfn.create_stack(
                StackName=stack,
                TemplateBody=template.text,
                Parameters=_parameters(parameters),
                Tags=[{"Key": "app", "Value": "caroud"}],
            )
        action = "created"
    else:
        seen = _latest_event_id(cfn, stack)
        if not _update(cfn, stack, template, parameters):
            return DeployResult(stack, "unchanged", status, stack_outputs(cfn, stack))
        action = "updated"
    final = wait(cfn, stack, seen, on_event, poll_s, timeout_s, sleep, clock)
    return DeployResult(stack, action, final, stack_outputs(cfn, stack))


def _parameters(values: Mapping[str, str], previous: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    given = [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]
    kept = [{"ParameterKey": k, "UsePreviousValue": True} for k in previous if k not in values]
    return given + kept


def _update(cfn: Client, stack: str, template: Template, values: Mapping[str, str]) -> bool:
    """Start an update; False if CloudFormation finds nothing to change."""
    from botocore.exceptions import ClientError

    with aws_errors(f"describing stack {stack!r}"):
        current = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters") or []
    previous = tuple(
        str(p["ParameterKey"]) for p in current if p["ParameterKey"] in template.parameters
    )
    try:
        with aws_errors(f"updating stack {stack!r}"):
            cfn.update_stack(
                StackName=stack,
                TemplateBody=template.text,
                Parameters=_parameters(values, previous),
                Tags=[{"Key": "app", "Value": "caroud"}],
            )
    except InfraError as e:
        if isinstance(e.__cause__, ClientError) and NO_UPDATES in _error_code(e.__cause__)[1]:
            return False
        raise
    return True


def _latest_event_id(cfn: Client, stack: str) -> str | None:
    with aws_errors(f"reading the events of stack {stack!r}"):
        events = cfn.describe_stack_events(StackName=stack).get("StackEvents") or []
    return str(events[0]["EventId"]) if events else None


def new_events(cfn: Client, stack: str, after: str | None) -> list[StackEvent]:
    """Events newer than the one with id ``after`` (all of them if None), oldest first."""
    with aws_errors(f"reading the events of stack {stack!r}"):
        raw = cfn.describe_stack_events(StackName=stack).get("StackEvents") or []
    fresh: list[StackEvent] = []
    for e in raw:  # newest first
        if after is not None and e["EventId"] == after:
            break
        stamp = e.get("Timestamp")
        fresh.append(
            StackEvent(
                event_id=str(e["EventId"]),
                timestamp=stamp.strftime("%H:%M:%S") if hasattr(stamp, "strftime") else str(stamp),
                resource=str(e.get("LogicalResourceId", "")),
                resource_type=str(e.get("ResourceType", "")),
                status=str(e.get("ResourceStatus", "")),
                reason=str(e.get("ResourceStatusReason") or ""),
            )
        )
    return list(reversed(fresh))


def wait(
    cfn: Client,
    stack: str,
    after: str | None,
    on_event: Callable[[StackEvent], None],
    poll_s: float = POLL_S,
    timeout_s: float = TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll the stack's events until it leaves ``*_IN_PROGRESS``; its final (successful) status."""
    deadline = clock() + timeout_s
    failures: list[StackEvent] = []
    while True:
        for event in new_events(cfn, stack, after):
            after = event.event_id
            if event.failed:
                failures.append(event)
            on_event(event)
        status = stack_status(cfn, stack) or "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            break
        if clock() >= deadline:
            raise InfraError(
                f"stack {stack!r} is still {status} after {timeout_s:g} s: follow it in the "
                "CloudFormation console, or run `caroud infra deploy` again to keep waiting"
            )
        sleep(poll_s)
    if status not in OK_STATUSES:
        reasons = "; ".join(f"{f.resource}: {f.reason or f.status}" for f in failures)
        raise InfraError(f"stack {stack!r} ended {status}" + (f": {reasons}" if reasons else ""))
    return status


# -- the endpoint ------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where the cache answers, and (only if read) its AUTH token, which ``repr`` leaves out."""

    host: str
    port: int
    secret_arn: str
    reader_host: str | None = None
    reader_port: int | None = None
    cluster_mode: bool = False
    token: str | None = field(default=None, repr=False)

    def url(self, show_token: bool = False) -> str:
        """``rediss://:TOKEN@host:port``, the token as ``***`` unless ``show_token``."""
        if show_token and self.token is None:
            raise InfraError("the AUTH token was not read: read it with read_token first")
        secret = quote(self.token, safe="") if show_token and self.token else REDACTED
        return f"rediss://:{secret}@{self.host}:{self.port}"

    def env_line(self, show_token: bool = False) -> str:
        """The ``.env`` line for Caroud."""
        return f"CAROUD_REDIS_URL={self.url(show_token)}"


def endpoint(cfn: Client, stack: str) -> Endpoint:
    """The endpoint from the stack's outputs (either template); the token is not read."""
    out = stack_outputs(cfn, stack)
    secret = out.get("AuthTokenSecretArn")
    if "PrimaryEndpointAddress" in out:
        host, port = out["PrimaryEndpointAddress"], out.get("PrimaryEndpointPort", "6379")
        cluster = False
    elif "ConfigurationEndpointAddress" in out:
        host, port = (
            out["ConfigurationEndpointAddress"],
            out.get("ConfigurationEndpointPort", "6379"),
        )
        cluster = True
    else:
        raise InfraError(
            f"stack {stack!r} has no PrimaryEndpointAddress or ConfigurationEndpointAddress "
            "output: was it deployed from a caroud template?"
        )
    if secret is None:
        raise InfraError(f"stack {stack!r} has no AuthTokenSecretArn output")
    reader = out.get("ReaderEndpointAddress")
    reader_port = out.get("ReaderEndpointPort")
    return Endpoint(
        host=host,
        port=int(port),
        secret_arn=secret,
        reader_host=reader,
        reader_port=int(reader_port) if reader_port else None,
        cluster_mode=cluster,
    )


def read_token(secrets: Client, found: Endpoint) -> Endpoint:
    """``found`` with its AUTH token, read from Secrets Manager now."""
    with aws_errors(f"reading the secret {found.secret_arn}"):
        reply = secrets.get_secret_value(SecretId=found.secret_arn)
    token = reply.get("SecretString")
    if not token:
        raise InfraError(f"the secret {found.secret_arn} holds no string: is it the AUTH token?")
    return Endpoint(
        found.host,
        found.port,
        found.secret_arn,
        found.reader_host,
        found.reader_port,
        found.cluster_mode,
        str(token),
    )


# -- status ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What ``describe_replication_groups`` says about one replication group."""

    replication_group_id: str
    status: str
    node_type: str
    cluster_mode: bool
    shards: int
    replicas: int
    members: tuple[str, ...]
    primary: str | None
    reader: str | None
    configuration: str | None
    multi_az: str
    automatic_failover: str
    transit_encryption: bool
    at_rest_encryption: bool
    auth_token: bool
    snapshot_retention_days: int
    snapshot_window: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replication_group_id(cfn: Client, stack: str) -> str:
    """The replication group a caroud stack made (its ``ReplicationGroupId`` output)."""
    out = stack_outputs(cfn, stack)
    if "ReplicationGroupId" not in out:
        raise InfraError(f"stack {stack!r} has no ReplicationGroupId output: pass --id")
    return out["ReplicationGroupId"]


def status(elasticache: Client, group_id: str) -> ClusterStatus:
    """The replication group's state; :class:`NotFoundError` if there is none by that id."""
    from botocore.exceptions import ClientError

    try:
        with aws_errors(f"describing replication group {group_id!r}"):
            reply = elasticache.describe_replication_groups(ReplicationGroupId=group_id)
    except InfraError as e:
        if isinstance(e.__cause__, ClientError) and "NotFound" in _error_code(e.__cause__)[0]:
            raise NotFoundError(f"no replication group {group_id!r} in this region") from e
        raise
    group = reply["ReplicationGroups"][0]
    groups = group.get("NodeGroups") or []
    members = tuple(str(m) for m in group.get("MemberClusters") or [])
    shards = max(len(groups), 1)
    return ClusterStatus(
        replication_group_id=str(group["ReplicationGroupId"]),
        status=str(group.get("Status", "?")),
        node_type=str(group.get("CacheNodeType", "?")),
        cluster_mode=bool(group.get("ClusterEnabled", False)),
        shards=shards,
        replicas=max(len(members) - shards, 0),
        members=members,
        primary=_address(groups[0].get("PrimaryEndpoint") if groups else None),
        reader=_address(groups[0].get("ReaderEndpoint") if groups else None),
        configuration=_address(group.get("ConfigurationEndpoint")),
        multi_az=str(group.get("MultiAZ", "?")),
        automatic_failover=str(group.get("AutomaticFailover", "?")),
        transit_encryption=bool(group.get("TransitEncryptionEnabled", False)),
        at_rest_encryption=bool(group.get("AtRestEncryptionEnabled", False)),
        auth_token=bool(group.get("AuthTokenEnabled", False)),
        snapshot_retention_days=int(group.get("SnapshotRetentionLimit", 0)),
        snapshot_window=str(group.get("SnapshotWindow", "")),
    )


def _address(endpoint: Mapping[str, Any] | None) -> str | None:
    if not endpoint or not endpoint.get("Address"):
        return None
    return f"{endpoint['Address']}:{endpoint.get('Port', 6379)}"
