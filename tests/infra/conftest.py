"""Fixtures of the infra tests: dummy AWS credentials, the shipped templates as plain data.

Nothing here reaches AWS: boto3 calls go to moto (``mock_aws``) or to a client whose
every call is answered by botocore's ``Stubber``, and the credentials are fake.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from caroud.infra import templates

REGION = "ap-southeast-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials and the guide's region; no real AWS config or profile is read."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def single() -> templates.Template:
    return templates.shipped("single")


@pytest.fixture
def cluster() -> templates.Template:
    return templates.shipped("cluster")


@pytest.fixture
def body(single: templates.Template) -> dict[str, Any]:
    """A deep copy of the single-shard template's body, free to mutate."""
    return copy.deepcopy(single.body)


@pytest.fixture
def cfn_stub() -> Iterator[tuple[Any, Stubber]]:
    """A CloudFormation client whose calls are all answered by a Stubber (none reach AWS)."""
    client = boto3.client("cloudformation", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()
