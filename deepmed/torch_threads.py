"""How many intra-op threads PyTorch may use in this process (TORCH_NUM_THREADS), set in one place.

torch starts one intra-op thread per core in every process. Three gunicorn sync workers on two cores, each
embedding a chat question with two threads, make six threads fight over two cores: every request gets slower and
none gets faster. Processes that run side by side should share the cores instead, so:

- gunicorn's ``post_fork`` (docker/gunicorn.conf.py) gives each web worker TORCH_NUM_THREADS threads, 1 when unset;
- Celery's ``worker_process_init`` (deepmed/celery.py) gives each pool process TORCH_NUM_THREADS threads, or, when
  unset, its share of the cores (cores // pool processes, at least 1: the one-process imaging worker keeps them all);
- ``make run`` (runserver) and management commands keep torch's own default unless the variable is set.

torch is not imported here: a process that never touches torch does not pay for it (about 1 s and 300 MB). When it
is not imported yet, the count goes into ``OMP_NUM_THREADS``, which torch reads when it is imported (and which also
caps the OpenMP/BLAS threads of numpy in that process, for the same reason); when it is, ``torch.set_num_threads``.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ENV_VAR", "apply_torch_threads", "configured_torch_threads", "share_of_cores"]

ENV_VAR = "TORCH_NUM_THREADS"


def configured_torch_threads(environ: dict[str, str] | None = None) -> int | None:
    """TORCH_NUM_THREADS as a positive integer, or None when it is unset or empty; ValueError names a bad value."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ENV_VAR} must be a whole number of threads (1 or more), got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{ENV_VAR} must be at least 1, got {value}")
    return value


def share_of_cores(processes: int, cores: int | None = None) -> int:
    """The threads each of ``processes`` side-by-side processes may use so that together they fill the cores."""
    if cores is None:
        # The cores this process may run on (a container's cpuset), not every core of the host.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, processes))


def apply_torch_threads(*, default: int | None) -> int | None:
    """Limit torch's intra-op threads in this process to TORCH_NUM_THREADS, else to ``default`` (None: leave torch's
    own default). Returns the count applied, or None when nothing was changed."""
    threads = configured_torch_threads() or default
    if threads is None:
        return None
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads
