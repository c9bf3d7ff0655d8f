from django.contrib import admin

from .models import ImageDataset


@admin.register(ImageDataset)
class ImageDatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "purpose", "n_images", "created_at")
    list_filter = ("purpose",)
    search_fields = ("name", "owner__email")
    readonly_fields = ("folder", "files", "classes", "class_counts", "report", "n_images", "created_at")
