"""Images: reading folders and index files (bad files skipped), augmentations, the image backbone and its export,
and the five label-free image objectives through the one trainer, on a tiny CNN built here."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from embtune.data.image_augment import SIMCLR, gaussian_blur, random_grayscale
from embtune.data.images import is_image_corpus, load_image, read_image_corpus
from embtune.encoders.image import ImageEncoder, ImageModel
from embtune.errors import EmbtuneError, InputError
from embtune.training.export import export_model
from embtune.training.objectives import IMAGE_OBJECTIVES, make_objective
from embtune.training.trainer import EvalSet, TrainConfig, train


class TinyCNN(nn.Module):
    dim = 16

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        )

    def forward(self, x):
        return self.body(x).mean(dim=(2, 3))


def _toy_image(kind: str, rng: np.random.Generator, size: int = 24) -> Image.Image:
    """Two visual classes: horizontal stripes vs a blob. Each image has its own tint, stripe frequency or blob place,
    so instance-discrimination objectives have something to tell images apart by."""
    y, x = np.mgrid[0:size, 0:size]
    tint = rng.uniform(-60, 60, 3)
    if kind == "stripes":
        base = np.stack([170 + 60 * np.sin(y * rng.uniform(0.5, 1.5)), 90 + 0 * y, 60 + 0 * y], axis=-1)
    else:
        cx, cy = rng.uniform(5, size - 5, 2)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / rng.uniform(15, 40))
        base = np.stack([60 + 0 * y, 80 + 120 * blob, 110 + 130 * blob], axis=-1)
    noisy = base + tint + rng.normal(0, 8, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy_images")
    rng = np.random.default_rng(0)
    for kind in ("stripes", "blobs"):
        (root / kind).mkdir()
        for i in range(24):
            _toy_image(kind, rng).save(root / kind / f"{i:02d}.png")
    return root


def _tiny_model(resolution: int = 16) -> ImageModel:
    torch.manual_seed(0)
    return ImageModel(TinyCNN(), resolution=resolution)


# -- reading -----------------------------------------------------------------------------------------------------------


def test_folder_labels_come_from_subfolders_and_bad_files_are_skipped_with_one_warning(tmp_path, caplog):
    rng = np.random.default_rng(1)
    for kind in ("a", "b"):
        (tmp_path / kind).mkdir()
        for i in range(3):
            _toy_image("stripes" if kind == "a" else "blobs", rng).save(tmp_path / kind / f"{i}.png")
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "a" / "garbage.png").write_bytes(b"this is not an image at all")
    good = tmp_path / "b" / "0.png"
    (tmp_path / "b" / "truncated.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "b" / "notes.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.WARNING):
        corpus = read_image_corpus(tmp_path)
    assert len(corpus) == 6 and corpus.unit == "images"
    assert sorted(set(corpus.labels)) == ["a", "b"] and corpus.skipped_empty == 3
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "skipped 3 unreadable image(s) of 9" in warning
    for name in ("empty.jpg", "garbage.png", "truncated.png"):
        assert name in warning
    assert all(Path(p).is_absolute() for p in corpus.texts)


def test_index_file_paths_are_relative_to_it_and_a_row_without_path_names_its_line(tmp_path, toy_folder):
    index = tmp_path / "index.jsonl"
    rows = [{"path": str(toy_folder / "stripes" / "00.png"), "label": "s"},
            {"path": str(toy_folder / "blobs" / "00.png"), "label": "b"}]
    index.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert is_image_corpus(index)
    corpus = read_image_corpus(index)
    assert corpus.labels == ["s", "b"] and len(corpus) == 2
    (tmp_path / "pics").mkdir()
    _toy_image("blobs", np.random.default_rng(3)).save(tmp_path / "pics" / "x.png")
    relative = tmp_path / "rel.jsonl"
    relative.write_text(json.dumps({"path": "pics/x.png"}) + "\n")
    assert read_image_corpus(relative).texts == [str((tmp_path / "pics" / "x.png").resolve())]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"path": "pics/x.png"}) + "\n" + json.dumps({"file": "pics/x.png"}) + "\n")
    with pytest.raises(InputError, match=r"broken.jsonl line 2: field 'path'"):
        read_image_corpus(broken)
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "hello", "path": "x"}) + "\n")
    assert not is_image_corpus(texts)  # a text corpus that happens to have a path field stays a text corpus


def test_any_colour_mode_becomes_rgb_and_exif_orientation_is_honoured(tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (20, 14), (0, 255, 255, 0)).save(cmyk)  # pure red in CMYK
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (12, 12), (0, 0, 255, 0)).save(rgba)  # fully transparent: shown on white
    gray = tmp_path / "gray.png"
    Image.new("L", (12, 12), 100).save(gray)
    red = load_image(cmyk, 8)
    assert red.shape == (3, 8, 8) and red.dtype == torch.uint8 and red[0].float().mean() > 200 and red[1].float().mean() < 60
    assert load_image(rgba, 8).float().mean() > 250
    g = load_image(gray, 8)
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])

    # a wide photo, left half red and right half blue, stored with "rotate 90 clockwise to display" (orientation 6):
    # displayed, it is tall with red on top
    wide = np.zeros((10, 20, 3), dtype=np.uint8)
    wide[:, :10, 0] = 255
    wide[:, 10:, 2] = 255
    image = Image.fromarray(wide)
    exif = image.getexif()
    exif[0x0112] = 6
    rotated = tmp_path / "rotated.jpg"
    image.save(rotated, exif=exif.tobytes(), quality=95)
    pixels = load_image(rotated, 10).float()
    top_right, bottom_left = pixels[:, 1, 8], pixels[:, 8, 1]
    assert top_right[0] > 150 and top_right[2] < 100  # red on top (unrotated, the top right would be blue)
    assert bottom_left[2] > 150 and bottom_left[0] < 100


# -- augmentation ------------------------------------------------------------------------------------------------------


def test_augmentations_keep_shape_and_range_and_are_reproducible_from_the_seed():
    images = torch.rand(6, 3, 20, 20)
    first = SIMCLR(images, torch.Generator().manual_seed(5))
    again = SIMCLR(images, torch.Generator().manual_seed(5))
    other = SIMCLR(images, torch.Generator().manual_seed(6))
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert torch.allclose(gaussian_blur(images, torch.Generator().manual_seed(0), p=0.0), images, atol=1e-6)
    gray = random_grayscale(images, torch.Generator().manual_seed(0), p=1.0)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])


# -- objectives through the trainer ------------------------------------------------------------------------------------

# Colour jitter is off (strength 0): the toy images differ mostly by tint, and instance discrimination needs a cue
# that survives the augmentations. MoCo's small queue is full after its first step; its losses compare from there.
OBJECTIVE_PARAMS = {"simclr": {"strength": 0.0}, "byol": {"strength": 0.0}, "moco": {"queue_size": 16, "strength": 0.0}}
FIRST_COMPARABLE_STEP = {"moco": 1}


@pytest.mark.parametrize("name", IMAGE_OBJECTIVES)
def test_each_image_objective_lowers_its_loss_on_a_toy_set(name, toy_folder, tmp_path):
    corpus = read_image_corpus(toy_folder)
    model = _tiny_model()
    objective = make_objective(name, model, **OBJECTIVE_PARAMS.get(name, {}))
    config = TrainConfig(max_steps=40, batch_size=16, learning_rate=3e-3, warmup_ratio=0.0, seed=0)
    result = train(model, objective, corpus.texts, config, checkpoint_dir=tmp_path / "ckpt")
    losses = [loss for _, loss in result.losses]
    assert result.stopped == "finished" and all(np.isfinite(losses))
    start = FIRST_COMPARABLE_STEP.get(name, 0)
    early, late = np.mean(losses[start : start + 3]), np.mean(losses[-6:])
    assert late < early * 0.9, f"{name}: loss {early:.4f} -> {late:.4f}"


def test_moco_resume_continues_exactly_including_queue_and_momentum_encoder(toy_folder, tmp_path):
    paths = read_image_corpus(toy_folder).texts

    class Killed(Exception):
        pass

    def run(folder: Path, *, kill_at: int | None = None, resume: bool = False):
        model = _tiny_model()
        objective = make_objective("moco", model, queue_size=24)
        config = TrainConfig(max_steps=4, batch_size=8, learning_rate=1e-3, checkpoint_every=1, seed=3)

        def on_step(step, total, loss):
            if step == kill_at:
                raise Killed

        train(model, objective, paths, config, checkpoint_dir=folder, resume=resume, on_step=on_step)
        return model, objective

    straight, straight_obj = run(tmp_path / "a")
    with pytest.raises(Killed):
        run(tmp_path / "b", kill_at=3)
    resumed, resumed_obj = run(tmp_path / "b", resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert torch.allclose(straight_obj.queue, resumed_obj.queue, atol=1e-6)
    for a, b in zip(straight_obj.key_encoder.parameters(), resumed_obj.key_encoder.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_batchnorm_statistics_stay_frozen_while_training_by_default(toy_folder, tmp_path):
    model = _tiny_model()
    before = model.net.body[1].running_mean.clone()
    objective = make_objective("simclr", model)
    train(model, objective, read_image_corpus(toy_folder).texts, TrainConfig(max_steps=3, batch_size=8),
          checkpoint_dir=tmp_path / "c")
    assert torch.equal(before, model.net.body[1].running_mean)
    assert not torch.equal(model.net.body[0].weight, _tiny_model().net.body[0].weight)  # weights did train


# -- export ----------------------------------------------------------------------------------------------------------


def test_exported_backbone_reproduces_the_in_memory_features_exactly(toy_folder, tmp_path):
    paths = read_image_corpus(toy_folder).texts
    model = _tiny_model()
    objective = make_objective("byol", model)
    eval_set = EvalSet(texts=paths[::4], labels=None, k=2)
    train(model, objective, paths, TrainConfig(max_steps=3, batch_size=8), checkpoint_dir=tmp_path / "ckpt",
          eval_set=eval_set)
    in_memory = model.encode(paths)
    export_model(model, tmp_path / "out", {"objective": "byol", "modality": "image"})
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"model.safetensors", "config.json", "README.md", "embtune.json"} <= set(files)
    assert not any("predictor" in k or "target" in k for k in _safetensor_keys(tmp_path / "out" / "model.safetensors"))
    reloaded = ImageModel.load(tmp_path / "out", net=TinyCNN())
    assert np.array_equal(reloaded.encode(paths), in_memory)
    with pytest.raises(EmbtuneError, match="custom network"):
        ImageModel.load(tmp_path / "out")


def _safetensor_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return list(f.keys())


def test_efficientnet_lite0_loads_from_the_package_and_an_exported_copy_encodes_identically(toy_folder, tmp_path):
    from embtune.encoders import load_encoder

    paths = read_image_corpus(toy_folder).texts[:6]
    model = ImageModel.pretrained(resolution=32)
    assert model.dim == 1280 and model.architecture == "efficientnet-lite0"
    features = model.encode(paths)
    assert np.isfinite(features).all() and features.std() > 0
    model.save(tmp_path / "lite0")
    encoder = load_encoder(str(tmp_path / "lite0"))
    assert isinstance(encoder, ImageEncoder) and encoder.modality == "image"
    assert np.array_equal(encoder.encode(paths, normalize=False), features)


# -- the verbs on an image folder -------------------------------------------------------------------------------------


def test_evaluate_and_finetune_read_an_image_folder_and_refuse_modality_mix_ups(toy_folder, tmp_path):
    import embtune
    from embtune.encoders import resolve_model

    evaluation = embtune.evaluate(toy_folder, seeds=1, cache=False)  # the default model follows the corpus
    assert evaluation.model == "efficientnet-lite0" and evaluation.n_texts == 48
    assert evaluation.metrics.values["knn_accuracy"] > 0.9  # two very different toy classes
    tuned = embtune.tune(toy_folder, method="spectral", seeds=1, cache=False, write_report=False)
    assert tuned.unit == "images" and tuned.n_fit + tuned.n_heldout == 48  # the CLI says "fitted ... on N images"
    minilm = str(resolve_model("all-MiniLM-L6-v2").path)  # an explicit text model is refused, not swapped
    with pytest.raises(EmbtuneError, match="holds images but .* is a text model; pass --model efficientnet-lite0"):
        embtune.evaluate(toy_folder, model=minilm, seeds=1, cache=False)
    texts = tmp_path / "t.txt"
    texts.write_text("a text\nanother text\n")
    with pytest.raises(EmbtuneError, match="trains image models"):
        embtune.finetune(texts, objective="simclr", output=tmp_path / "x", max_steps=1)
    result = embtune.finetune(toy_folder, objective="inpaint", output=tmp_path / "ft", max_steps=2, batch_size=8,
                              resolution=32, write_report=False)
    assert result.base_model == "efficientnet-lite0" and result.steps == 2
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["architecture"] == "efficientnet-lite0" and config["resolution"] == 32
    vectors = embtune.encode(str(toy_folder), model=str(tmp_path / "ft"))
    assert vectors.shape == (48, 1280)
