"""Loading the model a run trains: a sentence-transformers / Hugging Face model, the USE port, or an image backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embtune.data.corpus import Corpus
from embtune.encoders import encoder_for, resolve_model
from embtune.errors import EmbtuneError


def trainable_encoder(model, objective: str, *, images: bool, source: str = "", device: str = "auto",
                      resolution: int | None = None, max_seq_length: int | None = None,
                      model_options: dict[str, Any] | None = None):
    """(encoder whose ``.model`` is the torch module to train, its :class:`ResolvedModel`).

    ``model_options`` (``freeze_embeddings``, ``dropout``) are the USE port's and refused for other models;
    ``resolution`` sets an image backbone's input side.
    """
    if images:
        encoder = encoder_for(model, Corpus(texts=[], path=Path(source), unit="images"), device=device, cache=None)
        if resolution:
            encoder.resolution = resolution
        return encoder, resolve_model(encoder.source)
    resolved = resolve_model(model)
    if resolved.backend == "use":  # the USE port trains with every text objective that only needs embeddings
        from embtune.encoders.use import USEEncoder

        if objective in ("tsdae", "mlm"):
            raise EmbtuneError(f"--objective {objective} needs a transformer with a decoder or MLM head; "
                               f"{resolved.name} is a DAN/CNN encoder: use augment, simcse, ct, neighbors, ...")
        use_options = {k: v for k, v in (model_options or {}).items() if v is not None}
        if max_seq_length:
            use_options["max_seq_length"] = max_seq_length
        return USEEncoder(resolved.path if resolved.path.is_dir() else resolved.name, name=resolved.name,
                          device=device, **use_options), resolved
    unused = sorted(k for k, v in (model_options or {}).items() if v is not None)
    if unused:
        raise EmbtuneError(f"{', '.join('--' + k.replace('_', '-') for k in unused)}: only for "
                           "--model use-multilingual-v3 (or a folder fine-tuned from it)")
    from embtune.encoders.sentence_transformer import SentenceTransformerEncoder

    return SentenceTransformerEncoder(resolved.path, name=resolved.name, device=device,
                                      max_seq_length=max_seq_length), resolved
