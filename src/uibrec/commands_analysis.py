"""CLI commands of the boundary analyses: ``recommend``, ``analyze``, ``alpha-sweep``.

Imported by :mod:`uibrec.cli`, which registers them; import that module, not this one.
"""

from __future__ import annotations

import click

from uibrec.cli import build_config, config_options, fail_cleanly
from uibrec.config import to_json

_RUN_DIR = click.Path(exists=True, file_okay=False)


@click.command()
@click.argument("run_dir", type=_RUN_DIR)
@click.option("--user", "users", multiple=True, required=True, metavar="RAW_ID",
              help="Raw user ID (repeat for several users).")
@click.option("-k", "--top", "k", type=int, default=10, show_default=True,
              help="Items per user.")
@click.option("--above-only", is_flag=True,
              help="Only items scoring above the user's boundary (UIB runs).")
@click.option("--include-seen", is_flag=True,
              help="Keep items the user interacted with (train, validation, test).")
@click.option("--csv", "as_csv", is_flag=True, help="Print csv instead of a table.")
def recommend(run_dir, users, k, above_only, include_seen, as_csv):
    """Top-k raw item IDs with scores, and whether each is above the user's boundary."""
    from uibrec.recommend import recommend as top_items

    table = fail_cleanly(top_items, run_dir, list(users), k=k,
                          only_above_boundary=above_only, exclude_seen=not include_seen)
    if as_csv:
        click.echo(table.to_csv(index=False), nl=False)
    elif table.empty:
        click.echo("no item to recommend (none above the boundary?)")
    else:
        click.echo(table.to_string(index=False))


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=_RUN_DIR)
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder (only with one run; default: the run's folder).")
@click.option("--compare", multiple=True, type=_RUN_DIR, metavar="RUN_DIR",
              help="Another run whose corrupted rate is plotted beside (e.g. BPR vs BPR+UIB).")
@click.option("--combined", type=click.Path(file_okay=False),
              help="Also write figures across all the runs (one per dataset) here.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1024,
              show_default=True, help="Users scored at once.")
def analyze(run_dirs, out, compare, combined, batch_size):
    """Boundary histogram, offset sweep, pre-ranking filter, score distributions and
    corrupted rate of each run, as PNG and csv files in the run's folder."""
    from uibrec.analysis.report import analyze_run, combine_analyses

    if out and len(run_dirs) > 1:
        raise click.UsageError("--out takes one run; several runs write into their folders")
    for run_dir in run_dirs:
        summary = fail_cleanly(analyze_run, run_dir, out, compare, batch_size=batch_size)
        click.echo(to_json(summary))
    if combined:
        folders = [out] if out else list(run_dirs)
        table = fail_cleanly(combine_analyses, folders, combined)
        click.echo(f"combined figures of {len(table)} runs written to {combined}")


@click.command("alpha-sweep")
@config_options
@click.option("--alphas", default="0.1,0.2,1,2,4,8,16", show_default=True,
              help="Comma-separated alphas.")
@click.option("--name", help="Sweep folder under --output (default alpha-sweep-<label>).")
@click.pass_context
def alpha_sweep(ctx, config_file, sets, alphas, name, **options):
    """Train one UIB run per alpha (NCF by default) and plot metrics, boundaries and
    scores against alpha."""
    from uibrec.analysis.alpha import alpha_sweep as sweep
    from uibrec.commands_experiments import split_list

    try:
        values = [float(a) for a in split_list(alphas, "--alphas")]
    except ValueError as exc:
        raise click.BadParameter(f"expected numbers, got {alphas!r}",
                                 param_hint="--alphas") from exc
    options["model"] = options.get("model") or "ncf"
    options["loss"] = options.get("loss") or "uib"
    config = build_config(config_file, sets, **options)
    progress = config.progress and not ctx.obj["quiet"]
    table = fail_cleanly(sweep, values, config, name=name, progress=progress)
    click.echo(table.to_string(index=False))
