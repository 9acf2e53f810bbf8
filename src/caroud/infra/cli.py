"""``caroud infra``: the ElastiCache stack as code. Parses arguments, calls the library, prints.

Mounted by ``caroud.cli`` as ``app.add_typer(infra_app, name="infra")``. Caroud errors
propagate to ``caroud.cli.main``, which prints them as one red line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from caroud.infra import deploy as aws
from caroud.infra import sizing, templates

infra_app = typer.Typer(
    help="ElastiCache as code: render, validate and deploy the stack; endpoint, status, sizing.",
    no_args_is_help=True,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

TemplateOption = Annotated[
    str,
    typer.Option("--template", "-t", help="single, cluster, or a template file"),
]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="NAME=VALUE, repeatable (template parameters)"),
]
Stack = Annotated[str, typer.Option("--stack", help="CloudFormation stack name")]
Region = Annotated[
    str | None, typer.Option(help="AWS region (default: AWS_DEFAULT_REGION / your AWS config)")
]
Profile = Annotated[str | None, typer.Option(help="AWS profile (default: AWS_PROFILE)")]
JsonOut = Annotated[bool, typer.Option("--json", help="print JSON")]


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@infra_app.command()
def render(
    template: TemplateOption = templates.DEFAULT_TEMPLATE,
    param: Params = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json")] = "yaml",
) -> None:
    """Print the template with the given parameters filled in as their defaults."""
    loaded = templates.load(template)
    body = templates.fill(loaded, templates.parse_assignments(param or []))
    sys.stdout.write(templates.render(body, fmt))


@infra_app.command()
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="template files (default: the shipped ones)")
    ] = None,
) -> None:
    """cfn-lint plus the project's policy checks; one line per problem, non-zero exit if any."""
    loaded = (
        [templates.load(p) for p in paths]
        if paths
        else [templates.shipped(name) for name in templates.TEMPLATES]
    )
    problems = 0
    for template in loaded:
        lines = templates.validate(template)
        for line in lines:
            sys.stdout.write(line + "\n")
        problems += len(lines)
        if not lines:
            err.print(f"{escape(template.name)}: ok (cfn-lint and the policy checks)")
    if problems:
        raise typer.Exit(1)


@infra_app.command("deploy")
def deploy_command(
    stack: Stack = aws.DEFAULT_STACK,
    template: TemplateOption = templates.DEFAULT_TEMPLATE,
    param: Params = None,
    region: Region = None,
    profile: Profile = None,
    poll: Annotated[float, typer.Option(help="seconds between event polls")] = aws.POLL_S,
) -> None:
    """Create or update the stack (after validating the template) and follow its events."""
    loaded = templates.load(template)
    problems = templates.validate(loaded)
    if problems:
        for line in problems:
            sys.stdout.write(line + "\n")
        err.print("[red]not deployed:[/] the template fails validation (lines above)")
        raise typer.Exit(1)
    values = templates.check_parameters(loaded, templates.parse_assignments(param or []))
    clients = aws.aws_clients(region, profile)
    done: set[str] = set()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"stack {stack}", total=loaded.resource_count)

        def show(event: aws.StackEvent) -> None:
            style = "red" if event.failed else "dim"
            progress.console.print(f"[{style}]{escape(str(event))}[/]")
            if event.status.endswith("_COMPLETE") and event.resource != stack:
                done.add(event.resource)
                progress.update(task, completed=min(len(done), loaded.resource_count))

        result = aws.deploy(
            clients.cloudformation, stack, loaded, values, on_event=show, poll_s=poll
        )
    err.print(f"stack {escape(stack)}: {result.action} ({result.status})")
    _print_json(result.outputs)


@infra_app.command()
def endpoint(
    stack: Stack = aws.DEFAULT_STACK,
    show_token: Annotated[
        bool, typer.Option("--show-token", help="put the real AUTH token in the .env line")
    ] = False,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """The endpoint, and the .env line for Caroud (token redacted unless --show-token)."""
    clients = aws.aws_clients(region, profile)
    found = aws.endpoint(clients.cloudformation, stack)
    if show_token:
        found = aws.read_token(clients.secretsmanager, found)
    kind = "configuration" if found.cluster_mode else "primary"
    err.print(f"{kind} endpoint  {found.host}:{found.port}")
    if found.reader_host:
        err.print(f"reader endpoint   {found.reader_host}:{found.reader_port}")
    err.print(f"AUTH token secret {found.secret_arn}")
    if found.cluster_mode:
        err.print("[yellow]cluster mode: the client must speak the cluster protocol[/]")
    sys.stdout.write(found.env_line(show_token) + "\n")


@infra_app.command()
def status(
    stack: Stack = aws.DEFAULT_STACK,
    group_id: Annotated[
        str | None, typer.Option("--id", help="replication group id (default: from the stack)")
    ] = None,
    region: Region = None,
    profile: Profile = None,
    json_out: JsonOut = False,
) -> None:
    """Status, node type, endpoints and replicas of the replication group."""
    clients = aws.aws_clients(region, profile)
    rg = group_id or aws.replication_group_id(clients.cloudformation, stack)
    found = aws.status(clients.elasticache, rg)
    if json_out:
        _print_json(found.as_dict())
        return
    for key, value in found.as_dict().items():
        shown = ", ".join(value) if isinstance(value, tuple) else value
        sys.stdout.write(f"{key:<24} {shown}\n")


@infra_app.command()
def size(
    players: Annotated[int, typer.Option(help="concurrent players")],
    players_per_match: Annotated[int, typer.Option(help="players in one match")] = 2,
    players_per_server: Annotated[int, typer.Option(help="players one game server hosts")] = 10,
    retained_matches: Annotated[
        int, typer.Option(help="matches per player still kept (CAROUD_MATCH_TTL / match length)")
    ] = 1,
    queues: Annotated[int, typer.Option(help="queues (each has an event stream)")] = 4,
    events_maxlen: Annotated[int, typer.Option(help="CAROUD_EVENTS_MAXLEN")] = 200_000,
    env: Annotated[str, typer.Option(help="prod (a replica: x2 cost) or dev")] = "prod",
    price: Annotated[
        list[str] | None, typer.Option(help="NODE_TYPE=USD_PER_HOUR, repeatable")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Node type, memory headroom and monthly cost for N players, from measured bytes."""
    if env not in ("dev", "prod"):
        raise typer.BadParameter("dev or prod", param_hint="--env")
    prices = {k: float(v) for k, v in templates.parse_assignments(price or []).items()}
    workload = sizing.Workload(
        players,
        players_per_match,
        players_per_server,
        retained_matches,
        queues,
        events_maxlen,
        replicas=1 if env == "prod" else 0,
    )
    result = sizing.size(workload, nodes=sizing.with_prices(sizing.NODE_TYPES, prices))
    if json_out:
        _print_json(sizing.as_json(result))
        return
    for line in sizing.describe(result):
        err.print(escape(line))
    for line in sizing.table(result):
        sys.stdout.write(line + "\n")
    if result.choice is None:
        sys.stdout.write("no node type fits: see docs/aws.md (matchmaking is one hash tag)\n")
        raise typer.Exit(1)
    c = result.choice
    sys.stdout.write(
        f"recommended: {c.node.name} ({env}, {c.nodes} node(s)): "
        f"{c.headroom_bytes / 2**20:,.0f} MiB headroom, ${c.monthly_usd:,.2f}/month\n"
    )


@infra_app.command()
def measure(
    count: Annotated[int, typer.Option(help="records per step (even)")] = 2000,
    redis_url: Annotated[
        str | None, typer.Option(help="an EMPTY database to measure on (default: fresh Valkey)")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Re-measure bytes per ticket, stream entry, match, server and allocation."""
    from caroud.infra.measure import measure as run

    result = run(redis_url, count)
    if json_out:
        _print_json(result.as_dict())
        return
    sys.stdout.write(sizing.as_source(result) + "\n")
