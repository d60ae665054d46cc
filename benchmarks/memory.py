"""Peak memory of the running process, shared by the benchmark scripts."""


def peak_gib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries a parent's
    ru_maxrss into the child it forks and execs, so a fresh worker would start at the
    parent's peak."""
    with open("/proc/self/status") as status:
        line = next(text for text in status if text.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20  # KiB -> GiB
