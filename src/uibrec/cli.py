"""The ``uibrec`` command line."""

from __future__ import annotations

import logging
import sys

import click

from uibrec.config import config_from_file, make_config, parse_value, to_json

logger = logging.getLogger("uibrec")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-vv for timings).")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only, no progress bar.")
@click.pass_context
def main(ctx, verbose, quiet):
    """uibrec: implicit-feedback recommenders with a learned user interest boundary."""
    from uibrec.distributed import process_rank

    # Under torchrun, processes other than 0 only warn; process 0 reports for all.
    quiet = quiet or process_rank() > 0
    ctx.obj = {"quiet": quiet}
    _setup_logging(verbose, quiet)


def _overrides(pairs) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


# Options shared by commands that build a Config; each maps to the Config field of its name.
_CONFIG_OPTIONS = [
    click.option("--dataset", help="Dataset name (ml-1m, ml-100k, ...) or interaction file."),
    click.option("--data-dir", type=click.Path(), help="Folder holding the datasets "
                 "(default: $UIBREC_DATA_DIR, then the user cache)."),
    click.option("--model", help="Model: mf, ncf, sml, lightgcn."),
    click.option("--loss", help="native (the model's own), uib, or a loss name."),
    click.option("--alpha", type=float, help="UIB weight of the negative term."),
    click.option("--num-negatives", type=int, help="Negatives per positive (default 32 for UIB)."),
    click.option("--lr", type=float, help="Learning rate."),
    click.option("--dropout", type=float, help="Dropout on embeddings."),
    click.option("--weight-decay", type=float, help="L2 on the batch's embedding rows."),
    click.option("--batch-size", type=int),
    click.option("--dim", type=int, help="Embedding size."),
    click.option("--epochs", type=int, help="Most epochs to train."),
    click.option("--seed", type=int),
    click.option("--device", help="cpu, cuda, cuda:1, ..."),
    click.option("--output", type=click.Path(), help="Folder under which runs are written."),
]


def config_options(func):
    for option in reversed(_CONFIG_OPTIONS):
        func = option(func)
    func = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                        help="Any other setting, e.g. --set model_options={layers: 2}.")(func)
    func = click.option("-c", "--config", "config_file",
                        type=click.Path(exists=True, dir_okay=False),
                        help="YAML or TOML file of settings; options override it.")(func)
    return func


def build_config(config_file, sets, **options):
    overrides = {k: v for k, v in options.items() if v is not None}
    overrides.update(_overrides(sets))
    try:
        if config_file:
            return config_from_file(config_file, overrides)
        return make_config({}, overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@main.command()
@config_options
@click.pass_context
def train(ctx, config_file, sets, **options):
    """Train one model, evaluate it, and save the run folder.

    Under torchrun (``torchrun --nproc_per_node 2 -m uibrec train ...``) the processes
    train together with DistributedDataParallel: see docs/distributed.md."""
    from uibrec.runs import train as run_training

    config = build_config(config_file, sets, **options)
    config.progress = config.progress and not ctx.obj["quiet"]
    metrics = run_training(config, progress=config.progress)
    if "run_dir" in metrics:  # under torchrun, only process 0 prints
        click.echo(to_json(metrics))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--no-full", is_flag=True, help="Skip full-ranking evaluation.")
def evaluate(run_dir, no_full):
    """Score a saved run again on its split and cached candidates."""
    from uibrec.runs import evaluate_run

    click.echo(to_json(evaluate_run(run_dir, full=not no_full)))


@main.group()
def data():
    """Dataset tools."""


@data.command("list")
def data_list():
    """The registered datasets and their official addresses."""
    from uibrec.data.registry import DATASETS

    for name, spec in sorted(DATASETS.items()):
        click.echo(f"{name:24s} {spec.description}\n{'':24s} {spec.url}")


from uibrec.commands_data import stats as _data_stats  # noqa: E402
from uibrec.commands_data import synth as _data_synth  # noqa: E402

data.add_command(_data_stats)
data.add_command(_data_synth)


class UserError(click.ClickException):
    """A mistake in the user's input: one line ``error: ...`` and exit status 2, the same
    from every command (recommend, analyze and alpha-sweep said ``Error:`` with 1)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _user_errors() -> tuple:
    from uibrec.training import TrainingDivergedError

    # A diverged run is the settings' fault (its message says which to lower), not ours.
    return (KeyError, ValueError, FileNotFoundError, TrainingDivergedError)


def user_error(exc: Exception) -> UserError:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return UserError(str(message))


def fail_cleanly(func, *args, **kwargs):
    """``func(*args, **kwargs)``, with the errors of bad input turned into a UserError."""
    try:
        return func(*args, **kwargs)
    except _user_errors() as exc:
        raise user_error(exc) from exc


def run():
    """Entry point that turns expected errors into one-line messages."""
    try:
        main(standalone_mode=True)
    except _user_errors() as exc:
        user_error(exc).show()
        sys.exit(UserError.exit_code)


from uibrec.commands_analysis import alpha_sweep, analyze, recommend  # noqa: E402

main.add_command(recommend)
main.add_command(analyze)
main.add_command(alpha_sweep)

from uibrec.commands_experiments import COMMANDS as _EXPERIMENT_COMMANDS  # noqa: E402

for _command in _EXPERIMENT_COMMANDS:
    main.add_command(_command)
