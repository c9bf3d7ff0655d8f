"""Benchmark: prediction latency and throughput of a trained image classifier.

A classifier (``--arch``, default EfficientNet-Lite0, at ``--image-size``, default 224) is fitted for
one epoch on 12 synthetic images (weights do not change speed), then timed on synthetic 256×256
PIL images:

  single      ImageClassifierTrainer.predict_proba([image])  p50 / p95 over --repeat calls
  bare        model(transform(image)[None]) under no_grad     p50 / p95 (same model, same transform)
  explain     gradcam.explain(trainer, image) (prediction + Grad-CAM + PNG overlay) p50 / p95
  torchscript load_torchscript(export).predict_proba([image]) p50 / p95
  batch 64    predict_proba(64 images) (its default chunks: 8 on CPU, 64 on CUDA) → images/s, vs the
              bare model on the same 64 in one forward pass → ratio

Usage: .venv/bin/python benchmarks/imaging_predict.py [--arch efficientnet_lite0] [--image-size 224]
       [--repeat 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def percentiles(samples: list[float]) -> str:
    values = np.array(samples) * 1000
    return f"p50 {np.percentile(values, 50):7.1f} ms   p95 {np.percentile(values, 95):7.1f} ms"


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from imaging.ml.datasets import PilListDataset
    from imaging.ml.export import export_torchscript, load_torchscript
    from imaging.ml.gradcam import explain
    from imaging.ml.synthetic import shapes_dataset
    from imaging.ml.training import ImageClassifierTrainer

    images, labels, names = shapes_dataset(4, size=64, seed=0)
    trainer = ImageClassifierTrainer(args.arch, epochs=1, batch_size=6, image_size=args.image_size)
    trainer.fit(PilListDataset(images, labels, names), PilListDataset(images, labels, names))
    queries, _, _ = shapes_dataset(22, size=256, seed=5)
    queries = [image.convert("RGB") for image in queries[:64]]
    one = queries[0]
    model, transform = trainer.model_.eval(), trainer.transform_

    def bare_single():
        with torch.no_grad():
            torch.softmax(model(transform(one)[None]), dim=1)

    def bare_batch():
        with torch.no_grad():
            torch.softmax(model(torch.stack([transform(image) for image in queries])), dim=1)

    with tempfile.TemporaryDirectory() as folder:
        scripted = load_torchscript(export_torchscript(trainer, Path(folder) / "model.ts"))
        single = timed(lambda: trainer.predict_proba([one]), args.repeat)
        bare = timed(bare_single, args.repeat)
        explained = timed(lambda: explain(trainer, one), max(5, args.repeat // 3))
        script_single = timed(lambda: scripted.predict_proba([one]), args.repeat)
        batch = timed(lambda: trainer.predict_proba(queries), 3)
        bare_b = timed(bare_batch, 3)

    print(
        f"torch {torch.__version__}, cpu, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}; "
        f"{args.arch} at {args.image_size}x{args.image_size}, inputs 256x256 PIL images"
    )
    print(f"  single image, predict_proba : {percentiles(single)}")
    print(f"  single image, bare model    : {percentiles(bare)}")
    print(f"  single image, TorchScript   : {percentiles(script_single)}")
    print(f"  single image, explain       : {percentiles(explained)}   (prediction + Grad-CAM + PNG overlay)")
    platform_rate = 64 / min(batch)
    bare_rate = 64 / min(bare_b)
    print(f"  batch of 64, predict_proba  : {platform_rate:7.1f} images/s (best of 3; default chunking)")
    print(f"  batch of 64, bare model     : {bare_rate:7.1f} images/s (best of 3; one 64-image forward pass)")
    print(f"  overhead ratio (bare / platform), batch of 64: {bare_rate / platform_rate:.3f}")


if __name__ == "__main__":
    main()
