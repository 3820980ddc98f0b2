"""A whole fine-tuning run, from a corpus to an exported model: read the data once, hold out the slice to watch,
load the model, build the objective, train (training/trainer.py, or training/tf_loop.py for TensorFlow SavedModels),
export with its summary. ``embtune.finetune`` guards the output folder, calls :func:`finetune_run` and writes the
report."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embtune.errors import EmbtuneError
from embtune.outputs import check_free_space
from embtune.progress import training_progress
from embtune.training import distributed
from embtune.training.summary import FinetuneResult, finetune_result, run_summary

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What a run is asked to do, besides the corpus, objective, model and output (the public function's options)."""

    text_field: str = "text"
    label_field: str | None = None
    use_labels: bool = True
    paraphrase_field: str | None = None
    sts: Any = None
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    grad_accum: int = 1
    max_seq_length: int | None = None
    resolution: int | None = None
    model_options: dict[str, Any] | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    early_stopping: str | None = None
    patience: int = 3
    max_minutes: float | None = None
    resume: bool = False
    objective_params: dict[str, Any] = field(default_factory=dict)
    collapse_guard: bool = True
    length_grouping: bool | None = None  # batches of similar-length texts; None: on where the objective allows it
    seed: int = 0
    device: str = "auto"
    show_progress: bool | None = None

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> RunOptions:
        """The options a caller passed by name; an unknown name is an error that lists the known ones."""
        import dataclasses

        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"finetune() got unexpected option(s) {', '.join(unknown)}; its options: {', '.join(known)}")
        run = cls(**options)
        run.objective_params = dict(run.objective_params or {})
        return run

    def config(self, defaults: dict[str, Any]):
        from embtune.training.trainer import TrainConfig

        return TrainConfig(
            epochs=self.epochs, max_steps=self.max_steps, batch_size=self.batch_size or defaults["batch_size"],
            grad_accum=self.grad_accum, learning_rate=self.learning_rate or defaults["learning_rate"],
            eval_every=self.eval_every, checkpoint_every=self.checkpoint_every,
            early_stopping_metric=self.early_stopping, patience=self.patience, max_minutes=self.max_minutes,
            seed=self.seed, collapse_ratio=0.25 if self.collapse_guard else 0.0, length_grouped=self.length_grouping,
        )


def check_output_folder(output: Path, resume: bool, overwrite: bool) -> None:
    """A finetune output folder: --resume needs its checkpoints; a new run needs it free of them (or --overwrite)."""
    checkpoint_dir = output / "checkpoints"
    if resume and not checkpoint_dir.is_dir():
        raise EmbtuneError(f"--resume: {output} has no checkpoints/ folder; run without --resume to start")
    if not resume and checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()):
        if not overwrite:
            raise EmbtuneError(
                f"{output} already holds a training run (checkpoints/); pass --resume to continue it or --overwrite "
                "to start over"
            )
        shutil.rmtree(checkpoint_dir)


def check_room_to_train(output: Path, module) -> None:
    """Fail before training when the output's disk cannot hold a checkpoint (the weights and Adam's two moments, 3x the
    parameters) plus the exported model (1x)."""
    if hasattr(module, "parameters"):
        weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
        check_free_space(output, 4 * weight_bytes, "fine-tuning (a checkpoint with optimizer state, then the exported model)")


def is_tensorflow(model) -> bool:
    return isinstance(model, str) and model.startswith("tfhub:")


def check_objective(objective: str, model):
    """The objective's class (None for a TensorFlow model, whose loop knows its own two), or a clear error."""
    from embtune.training.objectives import objective_class

    if is_tensorflow(model):
        from embtune.training.tf_loop import TF_OBJECTIVES

        if objective not in TF_OBJECTIVES:
            raise EmbtuneError(f"--objective {objective}: TensorFlow models fine-tune with {' or '.join(TF_OBJECTIVES)}")
        if distributed.launched():
            raise EmbtuneError("TensorFlow models train in one process; run without torchrun / --nproc")
        return None
    return objective_class(objective)


def finetune_run(corpus, objective: str, objective_cls, model, output: Path,
                 options: RunOptions) -> tuple[FinetuneResult, Any]:
    """Train ``model`` with ``objective`` (its class from :func:`check_objective`, None for TensorFlow) on ``corpus``
    and export it to ``output``; (result, the trained encoder or None for TensorFlow). Under torchrun every rank
    trains; rank 0 exports."""
    if objective_cls is None:
        return finetune_tfhub(corpus, objective, model, output, options), None
    from embtune.training.eval_slice import hold_out_slice
    from embtune.training.items import training_data
    from embtune.training.models import trainable_encoder

    images = objective_cls.data == "images"
    data = training_data(objective_cls, corpus, options.text_field, options.label_field, options.use_labels,
                         options.paraphrase_field)
    items, eval_set = hold_out_slice(data, seed=options.seed, sts=options.sts, views=not images,
                                     early_stopping=options.early_stopping)
    encoder, resolved = trainable_encoder(model, objective, images=images, source=data.source, device=options.device,
                                          resolution=options.resolution, max_seq_length=options.max_seq_length,
                                          model_options=options.model_options)
    summary = _train_and_export(encoder, resolved, objective, objective_cls, items, eval_set, output, options,
                                corpus=data.source, images=images)
    return finetune_result(summary), encoder


def _train_and_export(encoder, resolved, objective, objective_cls, items, eval_set, output: Path, options: RunOptions,
                      *, corpus: str, images: bool) -> dict[str, Any]:
    from embtune.evaluation.clustering import choose_k
    from embtune.training.export import export_model
    from embtune.training.objectives import make_objective
    from embtune.training.objectives.anchor import AnchoredObjective, describe_anchor
    from embtune.training.objectives.base import encode_frozen
    from embtune.training.trainer import evaluate_model, train

    st_model = encoder.module()  # the trainable torch module (for the USE port: not its numpy encoder)
    if eval_set is not None:  # k is fixed for the whole run: the labels', else chosen once on the base model's vectors
        eval_set.k = (len(set(eval_set.labels)) if eval_set.labels is not None
                      else choose_k(encode_frozen(st_model, eval_set.texts), seed=options.seed)[0])
    objective_module = make_objective(objective, st_model, **options.objective_params)
    anchor = objective_module.weight if isinstance(objective_module, AnchoredObjective) else 0.0  # as built
    config = options.config(objective_cls.defaults)
    if distributed.is_main():
        check_room_to_train(output, st_model)
    total = config.total_steps(len(items))
    log.info("fine-tuning %s with %s%s on %d items (%d held out to watch), %d steps of %d, lr %g", resolved.name,
             objective, f" {describe_anchor(anchor)}" if anchor else "", len(items),
             len(eval_set.texts) if eval_set else 0, total, config.batch_size, config.learning_rate)
    with training_progress(total, options.show_progress, objective) as update:
        result = train(st_model, objective_module, items, config, checkpoint_dir=output / "checkpoints",
                       eval_set=eval_set, resume=options.resume, on_step=update)
    extra: dict[str, Any] = {"anchor": anchor}
    if images:
        extra.update(modality="image", resolution=st_model.resolution)
    elif resolved.backend == "use":
        extra.update(backend="use")
    summary = run_summary(result, config, base_model=resolved.name,
                          base_model_path=encoder.source if images else str(resolved.path), objective=objective,
                          objective_summary=objective_module.summary, corpus=corpus, n_train=len(items),
                          eval_set=eval_set, after=evaluate_model(st_model, eval_set) if eval_set is not None else {},
                          seed=options.seed, output=output, **extra)
    if distributed.is_main():  # the other processes trained the same weights; rank 0 exports them
        export_model(st_model, output, summary)
    return summary


def finetune_tfhub(corpus, objective: str, model: str, output: Path, options: RunOptions) -> FinetuneResult:
    """A TensorFlow SavedModel's run: the TF loop of training/tf_loop.py, the result saved as a SavedModel in
    ``output`` (reloads with ``hub.load`` and ``--model tfhub:OUTPUT``) with the same embtune.json and card."""
    from embtune.data.load import load_corpus
    from embtune.encoders.tfhub import tfhub_path
    from embtune.evaluation.monitor import training_metrics
    from embtune.training.eval_slice import hold_out_rows
    from embtune.training.export import export_model
    from embtune.training.tf_loop import finetune_tf

    path = tfhub_path(model)
    data = load_corpus(corpus, options.text_field, options.label_field, options.use_labels)
    items, eval_set = hold_out_rows(list(data.texts), data.labels, seed=options.seed)
    params = dict(options.objective_params)
    tf_options = {k: params.pop(k) for k in ("temperature", "bottleneck") if k in params}
    if params:
        raise EmbtuneError(f"--model tfhub:...: options {', '.join(sorted(params))} are not used by the TensorFlow loop")
    config = options.config({"batch_size": 32, "learning_rate": 1e-4})
    config.grad_accum, config.early_stopping_metric, config.patience = 1, None, 3  # the TF loop has neither
    log.info("fine-tuning %s (TensorFlow) with %s on %d items, %d steps of %d", path.name, objective, len(items),
             config.total_steps(len(items)), config.batch_size)
    with training_progress(config.total_steps(len(items)), options.show_progress, objective) as update:
        result, tf_model = finetune_tf(path, items, objective, output, config, eval_set=eval_set, resume=options.resume,
                                       on_step=update, **tf_options)
    after = result.history[-1]["metrics"] if result.history and result.history[-1]["step"] == result.kept_step else {}
    if eval_set is not None and not after:
        after = training_metrics(tf_model.encode(eval_set.texts), k=eval_set.k, labels=eval_set.labels)
    about = "two augmented views, normalised InfoNCE" if objective == "augment" else "dense bottleneck rebuilds the base vectors"
    summary = run_summary(result, config, base_model=f"tfhub:{path}", base_model_path=str(path), objective=objective,
                          objective_summary=f"TensorFlow loop: {about}", corpus=str(data.path) if data.path else "texts",
                          n_train=len(items), eval_set=eval_set, after=after, seed=options.seed, output=output,
                          backend="tfhub")
    export_model(tf_model.module, output, summary,
                 save=lambda folder: tf_model.tf.saved_model.save(tf_model.module, str(folder)))
    return finetune_result(summary, base_model=f"tfhub:{path.name}")
