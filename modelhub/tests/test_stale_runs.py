from datetime import timedelta

import pytest
from django.utils import timezone

from modelhub import services, tasks
from modelhub.models import TrainingRun
from modelhub.services import training_run_fail_stale

from .factories import RunningTrainingRunFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db

Status = TrainingRun.Status


@pytest.fixture(autouse=True)
def timeout(settings):
    settings.STALE_RUN_TIMEOUT_MINUTES = 60


def minutes_ago(minutes):
    return timezone.now() - timedelta(minutes=minutes)


def test_a_run_silent_past_the_timeout_is_marked_failed_with_a_plain_error(alice):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=minutes_ago(61))

    assert training_run_fail_stale() == [run.pk]

    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert run.finished_at is not None
    assert "stopped reporting progress for more than 60 minutes" in run.error
    assert "Start the training again" in run.error


def test_a_run_with_a_recent_heartbeat_is_left_running(alice):
    run = RunningTrainingRunFactory(user=alice, started_at=minutes_ago(600), heartbeat_at=minutes_ago(5))

    assert training_run_fail_stale() == []
    assert TrainingRun.objects.get(pk=run.pk).status == Status.RUNNING


def test_without_a_heartbeat_the_start_time_counts(alice):
    stale = RunningTrainingRunFactory(user=alice, started_at=minutes_ago(61), heartbeat_at=None)
    fresh = RunningTrainingRunFactory(user=alice, started_at=minutes_ago(10), heartbeat_at=None)

    assert training_run_fail_stale() == [stale.pk]
    assert TrainingRun.objects.get(pk=fresh.pk).status == Status.RUNNING


def test_queued_and_finished_runs_are_not_touched(alice):
    queued = TrainingRunFactory(user=alice, created_at=minutes_ago(6000))
    done = TrainingRunFactory(user=alice, status=Status.SUCCEEDED, heartbeat_at=minutes_ago(6000))

    assert training_run_fail_stale() == []
    assert TrainingRun.objects.get(pk=queued.pk).status == Status.QUEUED
    assert TrainingRun.objects.get(pk=done.pk).status == Status.SUCCEEDED


def test_a_stale_run_that_was_asked_to_stop_is_marked_stopped(alice):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=minutes_ago(61), stop_requested=True)

    training_run_fail_stale()

    run.refresh_from_db()
    assert run.status == Status.STOPPED
    assert run.error == ""


def test_a_second_sweep_claims_nothing(alice):
    RunningTrainingRunFactory(user=alice, heartbeat_at=minutes_ago(61))

    assert len(training_run_fail_stale()) == 1
    assert training_run_fail_stale() == []


def test_a_run_that_reports_progress_before_the_claim_is_not_overwritten(alice, monkeypatch):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=minutes_ago(61))
    real_candidates = services._stale_run_candidates

    def candidates_then_heartbeat(stale):
        found = real_candidates(stale)
        TrainingRun.objects.get(pk=run.pk).set_progress(0.5)  # the worker beats between the read and the claim
        return found

    monkeypatch.setattr(services, "_stale_run_candidates", candidates_then_heartbeat)

    assert training_run_fail_stale() == []
    assert TrainingRun.objects.get(pk=run.pk).status == Status.RUNNING


def test_the_beat_task_marks_stale_runs(alice):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=minutes_ago(61))

    assert tasks.mark_stale_runs.delay().get() == [run.pk]
    assert TrainingRun.objects.get(pk=run.pk).status == Status.FAILED
