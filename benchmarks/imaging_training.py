"""Benchmark + acceptance: image classifier training and the anomaly detector.

Parts (``--parts``, comma-separated; all by default):

  throughput   images/s of the training loop through ImageClassifierTrainer vs a bare torchvision
               loop (same model family built with weights=None, same synthetic 64×64 data, same
               PIL → tensor transform in a DataLoader, same batch size, AdamW + cross-entropy),
               interleaved bare/platform × --rounds, best and median of each → overhead ratio.
               Validation time is excluded from both (the trainer's train_images_per_second_).
  acceptance   synthetic shapes (circle/square/triangle on noise, 64×64, 200 per class, stratified
               80/20 split): ResNet-18 at level 3 and EfficientNet-Lite0 at level 2 → validation
               accuracy of the restored best checkpoint (must be ≥ 0.9) and wall time.
  anomaly      autoencoder trained on circles only (200 images, 64×64), scored on a held-out mix of
               100 circles and 100 squares/triangles → AUROC (must be ≥ 0.9), default reconstruction
               mode and enhanced (latent ensemble) mode.

Usage: .venv/bin/python benchmarks/imaging_training.py [--parts throughput,acceptance,anomaly]
       [--threads 1] [--throughput-images 192] [--throughput-epochs 2] [--arch resnet18]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def bare_loop(arch: str, dataset, *, epochs: int, batch_size: int, image_size: int, lr: float, seed: int) -> float:
    """Plain torchvision training loop; returns training images per second."""
    import torchvision
    from torch.utils.data import DataLoader

    from imaging.ml.training import _Transformed, eval_transform

    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=3)
    transform = eval_transform(image_size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    loader = DataLoader(
        _Transformed(dataset, transform),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()
    seen = 0
    started = time.perf_counter()
    for _ in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            seen += targets.shape[0]
    return seen / (time.perf_counter() - started)


def platform_loop(arch: str, train, val, *, epochs: int, batch_size: int, image_size: int, lr: float, seed: int):
    from imaging.ml.training import ImageClassifierTrainer

    trainer = ImageClassifierTrainer(
        arch,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        image_size=image_size,
        pretrained=False,
        patience=epochs + 1,
        seed=seed,
        progress=lambda event: None,
        should_stop=lambda: False,
    )
    trainer.fit(train, val)
    return trainer.train_images_per_second_


def run_throughput(args) -> None:
    from imaging.ml.datasets import PilListDataset
    from imaging.ml.synthetic import shapes_dataset

    per_class = args.throughput_images // 3
    images, labels, names = shapes_dataset(per_class, size=64, seed=0)
    val_images, val_labels, _ = shapes_dataset(3, size=64, seed=1)
    train, val = PilListDataset(images, labels, names), PilListDataset(val_images, val_labels, names)
    settings = {"epochs": args.throughput_epochs, "batch_size": 16, "image_size": 64, "lr": 0.001, "seed": 0}
    bare, platform = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(args.arch, train, **settings))
        platform.append(platform_loop(args.arch, train, val, **settings))
    best_bare, best_platform = max(bare), max(platform)
    median_bare, median_platform = float(np.median(bare)), float(np.median(platform))
    print(
        f"[throughput] {args.arch} 64x64, {len(train)} images x {args.throughput_epochs} epochs, batch 16, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print(f"  bare torchvision loop : {best_bare:7.1f} images/s   (runs: {', '.join(f'{v:.1f}' for v in bare)})")
    print(
        f"  ImageClassifierTrainer: {best_platform:7.1f} images/s   (runs: {', '.join(f'{v:.1f}' for v in platform)})"
    )
    print(
        f"  overhead ratio (bare / platform): best {best_bare / best_platform:.3f}, "
        f"median {median_bare / median_platform:.3f}"
    )


def run_acceptance(args) -> None:
    from sklearn.model_selection import train_test_split

    from imaging.ml.datasets import PilListDataset
    from imaging.ml.synthetic import shapes_dataset
    from imaging.ml.training import ImageClassifierTrainer

    images, labels, names = shapes_dataset(200, size=64, seed=0)
    positions = np.arange(len(images))
    train_pos, val_pos = train_test_split(positions, test_size=0.2, stratify=labels, random_state=0)
    train = PilListDataset([images[i] for i in train_pos], [labels[i] for i in train_pos], names)
    val = PilListDataset([images[i] for i in val_pos], [labels[i] for i in val_pos], names)
    for arch, level in (("resnet18", 3), ("efficientnet_lite0", 2)):
        started = time.perf_counter()
        trainer = ImageClassifierTrainer(arch, level=level, image_size=64, seed=0)
        trainer.fit(train, val)
        wall = time.perf_counter() - started
        accuracy = trainer.metrics_["accuracy"]
        verdict = "PASS" if accuracy >= 0.9 else "FAIL"
        curve = ", ".join(
            f"e{h['epoch']}: val_loss {h['val_loss']:.3f} acc {h['val_accuracy']:.3f}" for h in trainer.history_
        )
        print(
            f"[acceptance] {arch} level {level} ({trainer.epochs} epochs, batch {trainer.batch_size}, "
            f"lr {trainer.learning_rate}), 64x64, {len(train)} train / {len(val)} val, weights: {trainer.info_.weights}"
        )
        print(f"  {curve}")
        print(
            f"  best epoch {trainer.best_epoch_}: validation accuracy {accuracy:.3f} "
            f"(macro AUC {trainer.metrics_['roc_auc_macro']:.3f}) in {wall:.1f} s wall -> {verdict} (>= 0.9)"
        )


def run_anomaly(args) -> None:
    from sklearn.metrics import roc_auc_score

    from imaging.ml.anomaly import AutoencoderAnomalyDetector
    from imaging.ml.synthetic import anomaly_sets

    train, test, truth = anomaly_sets("circle", 200, 100, 100, size=64, seed=0)
    for enhanced in (False, True):
        started = time.perf_counter()
        detector = AutoencoderAnomalyDetector(image_size=64, epochs=args.anomaly_epochs, enhanced=enhanced, seed=0)
        detector.fit(train)
        wall = time.perf_counter() - started
        results = detector.score(test)
        scores = np.array([r["score"] for r in results])
        flagged = np.array([r["is_anomaly"] for r in results])
        auroc = roc_auc_score(truth, scores)
        mode = "enhanced (ensemble)" if enhanced else "reconstruction"
        verdict = "PASS" if auroc >= 0.9 else "FAIL"
        print(
            f"[anomaly] {mode}: trained on 200 circles ({len(detector.history_)} epochs) in {wall:.1f} s; "
            f"held-out 100 circles + 100 squares/triangles"
        )
        print(
            f"  AUROC {auroc:.3f} -> {verdict} (>= 0.9); at the 95th-percentile threshold: "
            f"{flagged[truth == 1].mean():.2f} of anomalies flagged, "
            f"{flagged[truth == 0].mean():.2f} of normals flagged"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="throughput,acceptance,anomaly")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "1")))
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--throughput-images", type=int, default=192)
    parser.add_argument("--throughput-epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bare/platform throughput rounds")
    parser.add_argument("--anomaly-epochs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device cpu, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    parts = {part.strip() for part in args.parts.split(",")}
    if "throughput" in parts:
        run_throughput(args)
    if "acceptance" in parts:
        run_acceptance(args)
    if "anomaly" in parts:
        run_anomaly(args)


if __name__ == "__main__":
    main()
