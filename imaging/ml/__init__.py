"""Imaging ML core: plain Python + PyTorch, no Django.

Modules (each documents its own API):

- ``archive``: ``inspect_zip`` / ``extract_images`` — safe ZIP intake (zip-slip, links, nested
  archives, bombs, encryption refused before anything is written).
- ``images`` / ``dicom``: decode-and-verify of PNG/JPEG/TIFF/BMP/DICOM, DICOM windowing and
  PS3.15 basic-profile de-identification, salted patient keys.
- ``datasets``: index a folder of class folders (checks, duplicates, splits, patient leakage) and a
  torch ``Dataset``.
- ``architectures``: ``build_model`` for EfficientNet-Lite0 and the torchvision classifiers, never
  downloading weights.
- ``training`` / ``metrics`` / ``export`` / ``gradcam``: ``ImageClassifierTrainer`` (fit / predict /
  predict_proba / save / load), validation metrics, TorchScript export, Grad-CAM overlays.
- ``anomaly``: convolutional autoencoder anomaly detector with optional latent-space ensemble;
  ``load_anomaly_detector`` loads either kind of stored detector.
- ``patchcore``: PatchCore anomaly detector (pretrained EfficientNet-Lite0 patch memory bank, greedy coreset,
  whole-image descriptor, pixel maps) — the default mode.
- ``anomaly_families``: seeded anomaly families (shape, spot, scratch, missing part, texture, intensity, contrast,
  noise, rotation, crop, lesion) applied to any generator of normal images, for tests and benchmarks.
- ``augmentation``: albumentations presets, preview grids, folder augmentation.
- ``pipeline``: ordered preprocessing → augmentation → training steps, validated then run.
- ``synthetic``: seeded synthetic shape datasets used by tests and the acceptance benchmarks.

Every user-facing failure is an ``ImagingError`` subclass carrying ``message`` (plain words a
clinician can act on) and ``code`` (a stable machine string), so the web layer can map it to a 4xx.
"""
