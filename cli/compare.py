"""`bizsent compare RUN_A RUN_B`: is B really better than A on the same posts? (core.evaluate.compare)"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from bizsent.cli.app import app, ctx_of, print_table

SHOWN_DISAGREEMENTS = 20  # the rest are in --json


@app.command("compare")
def compare(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help="run A: id or name (the baseline, say the zero-shot run)")],
    run_b: Annotated[str, typer.Argument(help="run B: id or name (the candidate, say the fine-tuned run)")],
    split: Annotated[str, typer.Option("--split", help="human split whose posts both runs scored: dev (as "
                                       "`bizsent eval RUN` scores) or test (`bizsent eval RUN --test`)")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of the tables")] = False,
) -> None:
    """Both runs' confusion matrices on the posts of a split that both scored, the paired difference in accuracy
    and macro-F1 (B minus A) with its 95% paired-bootstrap interval, McNemar's test for accuracy, and the posts
    where they disagree. Reads stored predictions: nothing is scored."""
    from bizsent.core.evaluate.compare import compare_runs

    c = ctx_of(ctx)
    comparison = compare_runs(c.db(create=False), run_a, run_b, split)
    if as_json:
        typer.echo(json.dumps(comparison.to_dict()))
        return
    _print(comparison)


def _print(comparison) -> None:
    from bizsent.core.evaluate.compare_text import matrix_rows, matrix_title, summary_lines
    from rich.columns import Columns
    from rich.table import Table

    tables = []
    for which, cm in (("a", comparison.stats.confusion_a), ("b", comparison.stats.confusion_b)):
        header, *rows = matrix_rows(cm)
        table = Table(*header, title=matrix_title(comparison, which))
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    print_table(Columns(tables))
    for line in summary_lines(comparison):
        typer.echo(line)
    pairs = comparison.disagreements
    if pairs:
        more = f" (first {SHOWN_DISAGREEMENTS}; all in --json)" if len(pairs) > SHOWN_DISAGREEMENTS else ""
        typer.echo(f"posts where they disagree{more}: post truth A B")
        for p in pairs[:SHOWN_DISAGREEMENTS]:
            typer.echo(f"  {p.post_id} {p.truth} {p.label_a} {p.label_b}")
