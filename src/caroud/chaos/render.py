"""A chaos report as a table for people."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from caroud.chaos.report import Report


def print_report(report: Report, console: Console | None = None) -> None:
    out = console or Console()
    table = Table(title=f"caroud chaos: {len(report.faults)} faults in {report.seconds:.0f} s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_column("")
    for f in report.figures:
        value = f"{f.value:g}"
        table.add_row(f.name, value, f.target, "[green]ok[/]" if f.ok else "[red]MISSED[/]")
    out.print(table)
    for name, seconds in report.recovery_s.items():
        shown = "no match after it" if seconds is None else f"{seconds:.2f} s to the first match"
        out.print(f"  {name}: {shown}")
    for note in report.notes:
        out.print(f"  {note}")
    for name, exits in report.unexpected_exits.items():
        for line in exits:
            out.print(f"  [red]{name} exited on its own[/]: {line}")
    out.print("[green]all at target[/]" if report.ok else "[red]some figures missed[/]")
