"""ElastiCache as code: the setup guide's steps 1-3 as CloudFormation, and ``caroud infra``.

    cloudformation/*.yaml   the templates (linked from infra/ at the repository root)
    templates.py            read, fill in parameters, render, cfn-lint, validate
    policy.py               the project's own rules (pure: a template body in, violations out)
    deploy.py               boto3: deploy the stack, the endpoint and token, status
    sizing.py               node type, headroom and cost from measured bytes (pure)
    measure.py              measures those bytes on a real server
    cli.py                  ``infra_app``, the typer sub-app (``caroud infra ...``)

docs/aws.md maps each step of the guide to a command.
"""
