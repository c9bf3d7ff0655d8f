from django.apps import AppConfig


class TabularConfig(AppConfig):
    name = "tabular"

    def ready(self):
        from modelhub.storage import MediaReference, register_media_references

        def _dataset_references():
            # Both files of a dataset: the original bytes and the parsed Parquet copy. Without this, the staff
            # storage check (/check_downloads_dir) reported every uploaded table as an orphan file.
            from .models import Dataset

            rows = Dataset.objects.only("id", "owner_id", "file_name", "parquet_name").order_by("id")
            for dataset in rows.iterator(chunk_size=2000):
                for name in dataset.stored_names():
                    yield MediaReference(source="datasets", row_id=dataset.pk, name=name, owner_id=dataset.owner_id)

        register_media_references("datasets", _dataset_references)

        from modelhub.run_groups import register_run_describer

        def _describe_runs(runs):
            # /my_models tells each run by its dataset and outcome: one query for all the page's tabular runs.
            from .models import Dataset

            ids = {int(run.dataset_id) for run in runs if run.dataset_id.isdigit()}
            names = dict(Dataset.objects.filter(pk__in=ids).values_list("pk", "name"))
            return {
                run.pk: {
                    "dataset": names.get(int(run.dataset_id), "a deleted dataset") if run.dataset_id.isdigit() else "",
                    "outcome": str(run.config.get("target") or ""),
                }
                for run in runs
            }

        register_run_describer("tabular.dataset", _describe_runs)
