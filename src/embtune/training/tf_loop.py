"""Fine-tuning a TensorFlow SavedModel's trainable variables (``--model tfhub:PATH``), for users whose model lives in TF.

The torch trainer cannot train TF variables, so this is a second, deliberately small loop with the same semantics:
- ``augment``: two augmented views per item (the same text augmentations / SimCLR image recipe as the torch
  objectives), L2-normalised, InfoNCE at temperature 0.1, symmetric, in-batch negatives, identical texts never
  negatives of each other;
- ``autoencoder``: the model's vector -> a dense bottleneck (ReLU) -> a dense decoder that must rebuild the base
  model's vector of the same item (MSE); bottleneck and decoder are dropped at export;
- Adam with warm-up and linear decay, gradient clipping, the held-out slice watched with the same metrics as the torch
  trainer (and the same collapse guard), checkpoints every N steps (``tf.train.Checkpoint``: variables, optimizer
  slots, step; the batch order follows from the seed and the step, so ``resume`` continues exactly), a time budget.
The result is saved with ``tf.saved_model.save`` into the output folder and reloads with ``hub.load``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embtune.atomic import atomic_write_text
from embtune.errors import EmbtuneError
from embtune.evaluation.monitor import training_metrics
from embtune.training.trainer import EvalSet, TrainConfig, TrainingStopped, TrainResult

log = logging.getLogger(__name__)

TF_OBJECTIVES = ("augment", "autoencoder")
STATE_FILE = "tf_state.json"


class _Adam:
    """Adam with decoupled weight decay 0 and slots as tf.Variables, so a tf.train.Checkpoint saves them."""

    def __init__(self, tf, variables, b1=0.9, b2=0.999, eps=1e-8):
        self.tf, self.b1, self.b2, self.eps = tf, b1, b2, eps
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.t = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply(self, grads, variables, lr: float) -> None:
        tf = self.tf
        self.t.assign_add(1)
        t = tf.cast(self.t, tf.float32)
        scale = lr * tf.sqrt(1 - self.b2**t) / (1 - self.b1**t)
        for g, var, m, v in zip(grads, variables, self.m, self.v):
            if g is None:
                continue
            if isinstance(g, tf.IndexedSlices):
                g = tf.convert_to_tensor(g)
            m.assign(self.b1 * m + (1 - self.b1) * g)
            v.assign(self.b2 * v + (1 - self.b2) * tf.square(g))
            var.assign_sub(scale * m / (tf.sqrt(v) + self.eps))


def _info_nce(tf, a, b, temperature: float, texts: list[str] | None):
    a = tf.math.l2_normalize(a, axis=-1)
    b = tf.math.l2_normalize(b, axis=-1)
    logits = tf.matmul(a, b, transpose_b=True) / temperature
    if texts is not None:  # identical texts are not negatives of each other
        codes = np.unique(np.asarray(texts), return_inverse=True)[1]
        same = (codes[:, None] == codes[None, :]) & ~np.eye(len(texts), dtype=bool)
        if same.any():
            logits = tf.where(tf.constant(same), tf.constant(-1e9, logits.dtype), logits)
    labels = tf.range(tf.shape(a)[0])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    loss_t = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.transpose(logits))
    return (tf.reduce_mean(loss) + tf.reduce_mean(loss_t)) / 2


def _views(model, items: list[str], rng: np.random.Generator):
    """Two augmented views of each item: text augmentations, or the SimCLR image recipe (batched torch ops)."""
    tf = model.tf
    if model.modality == "text":
        from embtune.data.augment import augment_text

        return (tf.constant([augment_text(t, rng) for t in items]), tf.constant([augment_text(t, rng) for t in items]))
    import torch

    from embtune.data.image_augment import SIMCLR

    images = torch.from_numpy(model.inputs(items).numpy()).permute(0, 3, 1, 2)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    first, second = SIMCLR(images, generator), SIMCLR(images, generator)
    return tuple(tf.constant(v.permute(0, 2, 3, 1).numpy()) for v in (first, second))


def _autoencoder_head(model, items: list[str], bottleneck: int, seed: int) -> tuple[list, np.ndarray]:
    """The autoencoder objective's dense bottleneck + decoder variables, and its targets: the base model's vectors."""
    tf = model.tf
    initializer = tf.keras.initializers.GlorotUniform(seed=seed)
    extra = [tf.Variable(initializer((model.dim, bottleneck)), name="bottleneck_w"),
             tf.Variable(tf.zeros([bottleneck]), name="bottleneck_b"),
             tf.Variable(initializer((bottleneck, model.dim)), name="decoder_w"),
             tf.Variable(tf.zeros([model.dim]), name="decoder_b")]
    return extra, model.encode(items)


def _rebuild_loss(model, batch: list[str], extra: list, targets: np.ndarray):
    """Mean squared error of the bottleneck's rebuild of the base vectors (inside the caller's GradientTape)."""
    tf = model.tf
    z = model(model.inputs(batch), training=True)
    hidden = tf.nn.relu(tf.matmul(z, extra[0]) + extra[1])
    rebuilt = tf.matmul(hidden, extra[2]) + extra[3]
    return tf.reduce_mean(tf.square(rebuilt - tf.constant(targets)))


def _collapsed(metrics: dict, initial: dict, ratio: float) -> bool:
    """The trainer's collapse rule: spread or effective rank below ``ratio`` of the start (0 turns it off)."""
    spread, rank = 1 - metrics["mean_cosine"], metrics["effective_rank"]
    return bool(ratio) and (spread < ratio * (1 - initial.get("mean_cosine", 0.0))
                            or rank < ratio * initial.get("effective_rank", 0.0))


def finetune_tf(
    path: Path,
    items: list[str],
    objective: str,
    output: Path,
    config: TrainConfig,
    *,
    temperature: float = 0.1,
    bottleneck: int = 64,
    eval_set: EvalSet | None = None,
    resume: bool = False,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[TrainResult, object]:
    """Fine-tune the SavedModel at ``path`` on ``items`` (texts or image paths); returns the result and the model.

    The caller saves the model (``tf.saved_model.save(model.module, output)``) once it is satisfied.
    """
    from embtune.encoders.tfhub import TFHubModel

    if objective not in TF_OBJECTIVES:
        raise EmbtuneError(f"--objective {objective}: TensorFlow models fine-tune with {' or '.join(TF_OBJECTIVES)}")
    model = TFHubModel(path)
    tf = model.tf
    variables = model.trainable_variables
    if not variables:
        raise EmbtuneError(
            f"{path}: the SavedModel has no trainable variables (it was saved frozen, e.g. a TF1 hub module without "
            "its trainable tags), so there is nothing to fine-tune; embtune can still encode, evaluate and tune on it"
        )
    tf.random.set_seed(config.seed)
    extra, targets = _autoencoder_head(model, items, bottleneck, config.seed) if objective == "autoencoder" else ([], None)
    trained = variables + extra
    optimizer = _Adam(tf, trained)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(module=model.module, extra=extra, m=optimizer.m, v=optimizer.v, t=optimizer.t,
                                     step=step_var)
    checkpoint_dir = Path(output) / "checkpoints"
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=config.keep_checkpoints)
    state_path = checkpoint_dir / STATE_FILE
    total = config.total_steps(len(items))
    eval_every = config.eval_every or max(1, total // 10)
    checkpoint_every = config.checkpoint_every or eval_every
    warmup = int(total * config.warmup_ratio)
    history: list[dict] = []
    losses: list[list[float]] = []
    seconds_before = 0.0
    if resume:
        if manager.latest_checkpoint is None:
            raise EmbtuneError(f"--resume: no checkpoint in {checkpoint_dir}; start without --resume")
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        saved = json.loads(state_path.read_text())
        history, losses, seconds_before = saved["history"], saved["losses"], saved["seconds"]
        log.info("resuming from step %d of %d", int(step_var), total)
    initial = history[0]["metrics"] if history else {}

    def watch() -> dict:
        return training_metrics(model.encode(eval_set.texts), k=eval_set.k, labels=eval_set.labels)

    if not resume and eval_set is not None:
        initial = watch()
        history.append({"step": 0, "metrics": initial})

    def save_state() -> None:
        manager.save(checkpoint_number=int(step_var))
        atomic_write_text(state_path, json.dumps({"history": history, "losses": losses,
                                                  "seconds": time.perf_counter() - started}) + "\n")

    started = time.perf_counter() - seconds_before
    if not resume:
        save_state()
    n = len(items)
    per_epoch = math.ceil(n / config.batch_size)
    stopped = "finished"
    while int(step_var) < total and stopped == "finished":
        step = int(step_var)
        epoch, index = divmod(step, per_epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        pick = order[index * config.batch_size : (index + 1) * config.batch_size]
        batch = [items[i] for i in pick]
        rng = np.random.default_rng([config.seed, 1_000_003, step])  # views follow from (seed, step): resumable
        with tf.GradientTape() as tape:
            if objective == "augment":
                first, second = _views(model, batch, rng)
                loss = _info_nce(tf, model(first, training=True), model(second, training=True), temperature,
                                 batch if model.modality == "text" else None)
            else:
                loss = _rebuild_loss(model, batch, extra, targets[pick])
        value = float(loss.numpy())
        if not math.isfinite(value):
            raise TrainingStopped(f"the loss became {value} at step {step + 1}; the last good checkpoint is "
                                  f"{manager.latest_checkpoint}. Lower --lr (now {config.learning_rate:g})")
        grads = tape.gradient(loss, trained)
        grads, _ = tf.clip_by_global_norm([g if g is not None else tf.zeros_like(v) for g, v in zip(grads, trained)],
                                          config.max_grad_norm)
        factor = (step + 1) / (warmup + 1) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))
        optimizer.apply(grads, trained, config.learning_rate * factor)
        step_var.assign_add(1)
        step += 1
        losses.append([step, round(value, 6)])
        if on_step is not None:
            on_step(step, total, value)
        if eval_set is not None and (step % eval_every == 0 or step == total):
            metrics = watch()
            history.append({"step": step, "metrics": metrics})
            log.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            if _collapsed(metrics, initial, config.collapse_ratio):
                history[-1]["collapsed"] = True
                stopped = "collapse"
                checkpoint.restore(manager.latest_checkpoint)  # back to the last healthy weights
                break
        if config.max_minutes is not None and time.perf_counter() - started > config.max_minutes * 60:
            stopped = "time budget"
        if step % checkpoint_every == 0 or step == total or stopped != "finished":
            save_state()
    kept = int(step_var) if stopped != "collapse" else int(Path(manager.latest_checkpoint).name.split("-")[-1])
    result = TrainResult(steps=len(losses), stopped=stopped, kept_step=kept, seconds=time.perf_counter() - started,
                         history=history, losses=losses, initial=initial)
    return result, model
