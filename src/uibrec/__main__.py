"""``python -m uibrec ...``, and ``torchrun --nproc_per_node N -m uibrec train ...``."""

from uibrec.cli import run

run()
