"""The imaging pages: who may open them, what they offer, and no inline scripts."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_images_redirects_to_the_pipeline_page(client):
    response = client.get("/images")
    assert response.status_code == 302 and response["Location"] == "/pipeline"


def test_the_pipeline_page_needs_a_login(client):
    response = client.get("/pipeline")
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_pipeline_page_offers_every_architecture_and_says_which_weights_it_uses(client, alice):
    client.force_login(alice)
    page = client.get("/pipeline").content.decode()
    for name in ("efficientnet_lite0", "resnet18", "vgg16", "densenet121", "mobilenet_v3_large"):
        assert f'value="{name}"' in page
    assert "ImageNet weights (shipped with the platform)" in page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None


def test_the_anomaly_page_lists_only_the_users_detectors(client, charlie):
    client.force_login(charlie)
    response = client.get("/anomaly_detection")
    assert response.status_code == 200 and "Train a detector first" in response.content.decode()


def test_the_images_guide_is_listed_as_available(client):
    response = client.get("/docs/images/")
    assert response.status_code == 200 and "DICOM" in response.content.decode()
