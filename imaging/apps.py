from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "imaging"

    def ready(self):
        from modelhub.storage import MediaReference, register_media_references

        def _references():
            from .models import ImageDataset

            for row_id, owner_id, folder in ImageDataset.objects.values_list("id", "owner_id", "folder").order_by("id"):
                yield MediaReference(source="image_datasets", row_id=row_id, name=folder, owner_id=owner_id)

        def _augmentation_references():
            from .models import AugmentationJob

            rows = AugmentationJob.objects.values_list("id", "owner_id", "folder").order_by("id")
            for row_id, owner_id, folder in rows:
                yield MediaReference(source="augmentation_jobs", row_id=row_id, name=folder, owner_id=owner_id)

        def _pipeline_references():
            from modelhub.models import TrainingRun

            rows = TrainingRun.objects.filter(dataset_type="image_pipeline").values_list("id", "user_id", "config")
            for row_id, user_id, config in rows.order_by("id"):
                if config.get("work_folder"):
                    yield MediaReference(
                        source="image_pipelines", row_id=row_id, name=config["work_folder"], owner_id=user_id
                    )

        register_media_references("image_datasets", _references)
        register_media_references("image_pipelines", _pipeline_references)
        register_media_references("augmentation_jobs", _augmentation_references)

        from modelhub.run_groups import register_run_describer

        def _describe_runs(runs):
            # /my_models tells each run by its image set and what the model tells apart.
            from .models import ImageDataset

            ids = {int(run.dataset_id) for run in runs if run.dataset_id.isdigit()}
            names = dict(ImageDataset.objects.filter(pk__in=ids).values_list("pk", "name"))
            described = {}
            for run in runs:
                classes = run.config.get("classes") or []
                outcome = f"image class ({', '.join(map(str, classes))})" if classes else "normal or anomalous image"
                dataset = names.get(int(run.dataset_id), "a deleted image set") if run.dataset_id.isdigit() else ""
                described[run.pk] = {"dataset": dataset, "outcome": outcome}
            return described

        register_run_describer("image_dataset", _describe_runs)
