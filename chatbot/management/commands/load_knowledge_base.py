"""Load the default knowledge base: DeepMed's user guide, ICD-10-CM categories and HPO terms (no download).

Idempotent: a document whose text is unchanged (same SHA-256) is skipped, so a re-run takes seconds. The first
full load embeds about 20,000 passages, a few minutes on two cores; `--background` queues it on the chatbot
queue instead, so `make run` starts at once (the guide, small, is always loaded here first).
"""

import time

from django.core.management.base import BaseCommand, CommandError

from chatbot import services
from chatbot.knowledge_sources import SOURCE_NAMES, default_sources


class Command(BaseCommand):
    help = "Load (or refresh) the default knowledge base: user guide, ICD-10-CM, HPO."

    def add_arguments(self, parser):
        parser.add_argument("--only", default="", help=f"Comma-separated sources to load: {','.join(SOURCE_NAMES)}.")
        parser.add_argument("--limit", type=int, default=None, help="At most this many documents per source.")
        parser.add_argument(
            "--background",
            action="store_true",
            help="Load the user guide now and queue the rest on the chatbot queue (a worker must be running).",
        )

    def handle(self, *args, only, limit, background, **options):
        wanted = [name.strip() for name in only.split(",") if name.strip()] or list(SOURCE_NAMES)
        unknown = sorted(set(wanted) - set(SOURCE_NAMES))
        if unknown:
            raise CommandError(f"Unknown source(s): {', '.join(unknown)}. Choose from {', '.join(SOURCE_NAMES)}.")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        if background:
            if "guide" in wanted:
                self._load(["guide"], limit)
            rest = [name for name in wanted if name != "guide"]
            if rest:
                from chatbot.tasks import knowledge_base_load
                from deepmed.jobs import BrokerUnavailable, send_job

                try:
                    send_job(knowledge_base_load, args=[rest, limit])
                except BrokerUnavailable as exc:
                    # No row to fail here: say what was not queued and how to load it without a worker.
                    raise CommandError(
                        f"The {', '.join(rest)} knowledge base was not queued: the job queue (CELERY_BROKER_URL) is "
                        "unreachable. Start the broker and run this again, or load it here without --background."
                    ) from exc
                self.stdout.write(f"Queued the {', '.join(rest)} knowledge base on the chatbot queue.")
            return
        self._load(wanted, limit)

    def _load(self, names, limit):
        started = time.perf_counter()
        sources = default_sources(only=names, limit=limit)
        self.stdout.write(f"Knowledge base: {len(sources)} documents from {', '.join(names)}")
        report = services.knowledge_base_load(sources=sources, on_progress=lambda line: self.stdout.write(f"  {line}"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Knowledge base ready: {report.created} added, {report.updated} updated, "
                f"{report.unchanged} unchanged, {report.chunks} passages indexed "
                f"in {time.perf_counter() - started:.1f} s."
            )
        )
