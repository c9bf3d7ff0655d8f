"""TORCH_NUM_THREADS: web workers and Celery pool processes share the cores instead of each taking all of them.

Each case runs in a fresh interpreter: torch's thread count is per process, and this one must keep its own."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepmed.torch_threads import configured_torch_threads, share_of_cores

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> dict:
    environ = {key: value for key, value in os.environ.items() if key not in {"TORCH_NUM_THREADS", "OMP_NUM_THREADS"}}
    environ.update(env)
    completed = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_setting_is_a_positive_whole_number_or_unset():
    assert configured_torch_threads({}) is None
    assert configured_torch_threads({"TORCH_NUM_THREADS": " "}) is None
    assert configured_torch_threads({"TORCH_NUM_THREADS": "3"}) == 3
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ValueError, match="TORCH_NUM_THREADS"):
            configured_torch_threads({"TORCH_NUM_THREADS": bad})


def test_side_by_side_processes_split_the_cores():
    assert share_of_cores(3, cores=2) == 1
    assert share_of_cores(2, cores=2) == 1
    assert share_of_cores(1, cores=2) == 2
    assert share_of_cores(2, cores=8) == 4
    assert share_of_cores(0, cores=4) == 4


GUNICORN_WORKER = """
import json, runpy, sys
config = runpy.run_path("docker/gunicorn.conf.py")
config["post_fork"](None, None)
assert "torch" not in sys.modules, "post_fork must not import torch"
import torch
print(json.dumps({"threads": torch.get_num_threads()}))
"""


def test_a_gunicorn_worker_gets_one_thread_by_default_without_importing_torch():
    assert run_python(GUNICORN_WORKER)["threads"] == 1


def test_a_gunicorn_worker_gets_the_configured_threads():
    assert run_python(GUNICORN_WORKER, TORCH_NUM_THREADS="2")["threads"] == 2


def test_a_bad_value_stops_the_gunicorn_worker_with_the_variables_name():
    code = 'import runpy; runpy.run_path("docker/gunicorn.conf.py")["post_fork"](None, None)'
    environ = {**os.environ, "TORCH_NUM_THREADS": "lots"}
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode != 0
    # Django's settings (imported with deepmed) or deepmed.torch_threads: either way the variable is named.
    assert "TORCH_NUM_THREADS must be" in completed.stderr


CELERY_POOL_PROCESS = """
import json
import django
django.setup()
import torch  # the worker's tasks import it before the pool forks
from celery import signals
from deepmed.torch_threads import share_of_cores
class WorkController:  # what worker_init sends: the worker, with its pool size
    concurrency = {concurrency}
signals.worker_init.send(sender=WorkController())
signals.worker_process_init.send(sender="test@host")
print(json.dumps({{"threads": torch.get_num_threads(), "share": share_of_cores({concurrency})}}))
"""


def test_a_celery_pool_process_gets_its_share_of_the_cores():
    result = run_python(CELERY_POOL_PROCESS.format(concurrency=2))
    assert result["threads"] == result["share"]
    result = run_python(CELERY_POOL_PROCESS.format(concurrency=1))
    assert result["threads"] == result["share"]


def test_a_celery_pool_process_gets_the_configured_threads():
    assert run_python(CELERY_POOL_PROCESS.format(concurrency=2), TORCH_NUM_THREADS="3")["threads"] == 3


def test_a_bad_value_stops_django_at_start():
    code = "import django; django.setup()"
    environ = {**os.environ, "TORCH_NUM_THREADS": "0"}
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode != 0
    assert "TORCH_NUM_THREADS must be at least 1" in completed.stderr
