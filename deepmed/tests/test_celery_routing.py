"""Tasks reach exactly one queue: the one their app is routed to."""

import pytest
from kombu import Connection

from deepmed.celery import QUEUES, app


def test_every_queue_has_its_own_routing_key():
    bindings = {name: (queue.exchange.name, queue.routing_key) for name, queue in app.amqp.queues.items()}
    assert set(QUEUES) <= set(bindings)
    assert len({bindings[name] for name in QUEUES}) == len(QUEUES)


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("tabular.tasks.train", "tabular"),
        ("imaging.tasks.train", "imaging"),
        ("chatbot.tasks.ingest", "chatbot"),
        ("modelhub.tasks.retention_sweep", "default"),
    ],
)
def test_a_task_is_delivered_to_its_queue_only(tmp_path, task_name, queue):
    folder = tmp_path / "broker"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0.01,
    }
    with Connection("filesystem://localhost/", transport_options=options) as connection:
        for declared in app.amqp.queues.values():
            declared.bind(connection.default_channel).declare()
        with app.producer_or_acquire(app.amqp.Producer(connection)) as producer:
            app.send_task(task_name, producer=producer)
        counts = {}
        for name in QUEUES:
            bound = app.amqp.queues[name].bind(connection.default_channel)
            counts[name] = bound.queue_declare(passive=True).message_count
    assert counts == {name: (1 if name == queue else 0) for name in QUEUES}
