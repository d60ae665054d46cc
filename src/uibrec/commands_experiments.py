"""``uibrec search``, ``uibrec reproduce`` and ``uibrec report``: the paper's experiments."""

from __future__ import annotations

import logging

import click

from uibrec.config import to_json
from uibrec.experiments.search import PRUNERS, SAMPLERS


def split_list(text: str | None, option: str) -> list[str]:
    """The entries of a comma-separated option; an empty list or entry is an error (an
    empty --models ran nothing and called the reproduction complete)."""
    parts = [part.strip() for part in (text or "").split(",")]
    if not any(parts):
        raise click.BadParameter("expected a comma-separated list, got nothing",
                                 param_hint=option)
    if not all(parts):
        raise click.BadParameter(f"empty entry in {text!r}", param_hint=option)
    return parts


def _overrides(data_dir, epochs, device, sets) -> dict:
    from uibrec.cli import _overrides as parse_sets

    out = parse_sets(sets)
    for key, value in (("data_dir", data_dir), ("epochs", epochs), ("device", device)):
        if value is not None:
            out[key] = value
    return out


def _route_optuna_logs() -> None:
    """Optuna's log lines through our handlers, so that ``-q`` silences them too."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    # Optuna sets its own logger to INFO; a propagated record skips the root logger's level,
    # so only NOTSET (inherit) lets -q silence the per-trial lines.
    logging.getLogger("optuna").setLevel(logging.NOTSET)


_SHARED = [
    click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False),
                 help="Folder of experiment files (default: ./experiments)."),
    click.option("--sampler", type=click.Choice(SAMPLERS), default="grid", show_default=True,
                 help="Optuna's grid sampler over the grid, or TPE (Optuna's default)."),
    click.option("--trials", type=click.IntRange(min=1), help="Most finished trials per "
                 "study (default: the experiment file's max_trials, else the whole grid)."),
    click.option("--pruner", type=click.Choice(PRUNERS), default="percentile",
                 show_default=True, help="Stop hopeless trials: bottom quarter, below median."),
    click.option("--storage", help="Study database URL (default: sqlite:///OUTPUT/studies.db)."),
    click.option("--data-dir", type=click.Path(), help="Folder holding the datasets."),
    click.option("--epochs", type=int, help="Override every configuration's epochs (smoke runs)."),
    click.option("--device", help="cpu, cuda, cuda:1, ..."),
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                 help="Override any setting of every configuration."),
]


def shared_options(func):
    for option in reversed(_SHARED):
        func = option(func)
    return func


@click.command()
@click.option("--dataset", required=True, help="Experiment name (ml-1m, aiv, ...) or file.")
@click.option("--model", required=True, help="mf, ncf, sml or lightgcn.")
@click.option("--loss", required=True, type=click.Choice(["native", "uib"]))
@shared_options
@click.option("--output", type=click.Path(), default="results/search", show_default=True,
              help="Folder of the default study database and the candidate cache.")
@click.option("--reset-running", is_flag=True,
              help="Mark running trials failed first (only when no other worker is alive).")
@click.option("--no-wait", is_flag=True, help="Stop when nothing is left to start, without "
              "waiting for the trials other workers run.")
def search(dataset, model, loss, experiments_dir, sampler, trials, pruner, storage, data_dir,
           epochs, device, sets, output, reset_running, no_wait):
    """Search one configuration's grid (resumable; run it in several processes to share)."""
    from uibrec.experiments.search import search as run_search
    from uibrec.experiments.spec import load_experiments

    _route_optuna_logs()
    found = load_experiments(dataset, experiments_dir)
    if (model, loss) not in found:
        raise click.UsageError(f"{dataset}: no configuration {model} / {loss}")
    result = run_search(found[(model, loss)], output, storage, sampler, trials, pruner,
                        _overrides(data_dir, epochs, device, sets), reset_running,
                        wait=not no_wait)
    click.echo(to_json({"study": result.study_name, "storage": result.storage,
                        "best_value": result.best_value, "best_params": result.best_params,
                        "trials": result.trials, "seconds": result.seconds}))


@click.command()
@click.option("--datasets", required=True, help="Comma-separated: ml-1m,aiv,lastfm,ml-10m "
              "(or experiment files).")
@click.option("--models", default="mf,ncf,sml,lightgcn", show_default=True)
@click.option("--losses", default="native,uib", show_default=True)
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Seeds 0 .. N-1.")
@click.option("--search", "do_search", is_flag=True,
              help="Search each configuration first and use its best settings.")
@shared_options
@click.option("--output", type=click.Path(), default="results/reproduce", show_default=True,
              help="Report folder; also holds the runs, the ledger and the studies.")
@click.option("--max-runs", type=click.IntRange(min=0), help="Stop after this many new runs.")
@click.option("--bootstrap", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Resamples of the per-user paired bootstrap.")
@click.option("--test", type=click.Choice(["user", "seed"]), default="user", show_default=True,
              help="Significance marks from the per-user bootstrap or the per-seed t-test.")
@click.option("--reset-running", is_flag=True, help="With --search: mark running trials "
              "failed first (after a kill, when no other worker is alive).")
@click.pass_context
def reproduce(ctx, datasets, models, losses, seeds, do_search, experiments_dir, sampler,
              trials, pruner, storage, data_dir, epochs, device, sets, output, max_runs,
              bootstrap, test, reset_running):
    """Run the paper's main experiment and write its report; rerun to resume."""
    from uibrec.experiments.reproduce import reproduce as run_reproduce

    if do_search:
        _route_optuna_logs()
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    result = run_reproduce(
        split_list(datasets, "--datasets"), split_list(models, "--models"),
        split_list(losses, "--losses"), seeds, output, search=do_search,
        sampler=sampler, max_trials=trials, storage=storage, pruner=pruner,
        overrides=_overrides(data_dir, epochs, device, sets), experiments_dir=experiments_dir,
        max_runs=max_runs, progress=not quiet, n_boot=bootstrap, test=test,
        reset_running=reset_running)
    state = "complete" if result.complete else "incomplete (run the same command to continue)"
    click.echo(f"{result.report}: {state}; {result.new_runs} new run(s), "
               f"{result.skipped_runs} already done")


@click.command()
@click.argument("output", type=click.Path(exists=True, file_okay=False))
@click.option("--bootstrap", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--test", type=click.Choice(["user", "seed"]), default="user", show_default=True)
def report(output, bootstrap, test):
    """Write the report of a reproduction folder again (e.g. while it runs)."""
    from uibrec.experiments.report import write_report

    click.echo(write_report(output, n_boot=bootstrap, test=test))


COMMANDS = (search, reproduce, report)
