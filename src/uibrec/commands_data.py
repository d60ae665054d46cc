"""``uibrec data stats``: the paper's Table 3 for registered datasets or files."""

from __future__ import annotations

import json

import click

_COLUMNS = ("users", "items", "train", "valid", "test")


@click.command("stats")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-dir", type=click.Path(), help="Folder holding the datasets "
              "(default: $UIBREC_DATA_DIR, then the user cache).")
@click.option("--min-user", type=click.IntRange(min=0), default=5, show_default=True,
              help="Keep users with at least this many interactions.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Split seed.")
@click.option("--read-options", metavar="YAML", help="How to read interaction files, as "
              "train's read_options: e.g. \"{sep: ',', header: true}\".")
@click.option("--no-download", is_flag=True, help="Never fetch a missing dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def stats(names, data_dir, min_user, seed, read_options, no_download, as_json):
    """Users, items, train / validation / test sizes and density of each dataset NAME
    (a registered name or an interaction file) after the paper's filter and
    leave-one-out split, and what each step removed."""
    from uibrec.config import parse_value
    from uibrec.data.split import no_users_left
    from uibrec.data.stats import dataset_stats

    # Without this, a file with a header could not be described here at all, though the
    # header error tells the user to pass read_options.
    options = parse_value(read_options) if read_options else {}
    if not isinstance(options, dict):
        raise click.BadParameter(f"expected a mapping such as {{header: true}}, got "
                                 f"{read_options!r}", param_hint="--read-options")
    from uibrec.training import _check_read_options  # train's check: same options, same words

    try:
        _check_read_options(options)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--read-options") from exc
    rows = [dataset_stats(name, data_dir, min_user=min_user, seed=seed,
                          download_missing=not no_download, **options) for name in names]
    for row in rows:
        if row["users"] == 0:  # the zeros below are right, but say why
            click.echo(f"warning: {row['file']}: {no_users_left(min_user, row['removed'])}",
                       err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(format_tables(rows))


def format_tables(rows: list[dict]) -> str:
    """The sizes table (one row per dataset) and the removals table (one column each)."""
    width = max(10, *(len(row["dataset"]) for row in rows))
    lines = [f"{'dataset':<{width}}" + "".join(f"{col:>10}" for col in _COLUMNS)
             + f"{'density':>10}"]
    for row in rows:
        lines.append(f"{row['dataset']:<{width}}" + "".join(f"{row[col]:>10,}" for col in
                     _COLUMNS) + f"{row['density']:>10.4%}")
    steps = ["raw rows"] + list(dict.fromkeys(k for row in rows for k in row["removed"]))
    step_width = max(len("rows read, then removed"), *(len(step) for step in steps))
    lines += ["", f"{'rows read, then removed':<{step_width}}" + "".join(f"{row['dataset']:>12}"
                                                          for row in rows)]
    for step in steps:
        counts = [row["raw rows"] if step == "raw rows" else row["removed"].get(step, "-")
                  for row in rows]
        lines.append(f"{step:<{step_width}}" + "".join(
            f"{count:>12,}" if isinstance(count, int) else f"{count:>12}" for count in counts))
    sources = [f"{row['dataset']}: {row['file']}" for row in rows if row["file"] != row["dataset"]]
    lines += [""] + sources if sources else []
    return "\n".join(lines)


@click.command("synth")
@click.option("--users", type=click.IntRange(min=1), required=True, help="Number of users.")
@click.option("--items", type=click.IntRange(min=1), required=True, help="Number of items.")
@click.option("--rows", type=click.IntRange(min=1), required=True,
              help="Number of distinct (user, item) interactions.")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="The csv to write: user,item lines without a header.")
@click.option("--zipf", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Item popularity exponent: rank r drawn with weight r^-zipf (0: uniform).")
@click.option("--min-per-user", type=click.IntRange(min=1), default=5, show_default=True,
              help="Interactions of the least active users.")
@click.option("--activity-sigma", type=click.FloatRange(min=0), default=1.0,
              show_default=True, help="Spread of user activity (log-normal sigma).")
@click.option("--seed", type=int, default=0, show_default=True)
def synth(users, items, rows, out, zipf, min_per_user, activity_sigma, seed):
    """Write synthetic interactions with long-tailed item popularity (for benchmarks);
    train on them with ``uibrec train --dataset OUT``."""
    from uibrec.data.synthetic import synthetic_interactions, write_csv

    data = synthetic_interactions(users, items, rows, zipf=zipf, seed=seed,
                                  min_per_user=min_per_user, activity_sigma=activity_sigma)
    write_csv(data, out)
    click.echo(f"wrote {len(data):,} interactions of {users:,} users and {items:,} items "
               f"to {out}")
