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
