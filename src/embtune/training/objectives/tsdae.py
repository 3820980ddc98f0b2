"""tsdae: denoising auto-encoder (Wang et al. 2021). Delete 60 % of the words, encode, and have a decoder whose weights
are tied to the encoder rebuild the original text from the sentence embedding alone. Uses sentence-transformers'
DenoisingAutoEncoderLoss (the decoder lives here and is dropped at export)."""

from __future__ import annotations

import numpy as np

from embtune.data.augment import delete_words
from embtune.errors import EmbtuneError
from embtune.training.objectives.base import Objective, tokenize


class TSDAEObjective(Objective):
    name = "tsdae"
    data = "texts"
    defaults = {"learning_rate": 3e-5, "batch_size": 16}
    summary = "rebuild each text from the embedding of a 60 %-deleted copy"

    def __init__(self, model, deletion: float = 0.6):
        super().__init__()
        from sentence_transformers.sentence_transformer.losses import DenoisingAutoEncoderLoss

        self.deletion = deletion
        try:
            self.loss = DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
        except (ValueError, OSError, AssertionError) as e:
            raise EmbtuneError(f"tsdae needs a transformer that can act as its own decoder (BERT-like); {e}") from None

    def batch(self, items: list, rng: np.random.Generator):
        texts = [t[0] if isinstance(t, tuple) else t for t in items]
        return [delete_words(t, rng, self.deletion) for t in texts], texts

    def forward(self, model, batch):
        noisy, original = batch
        return self.loss([tokenize(model, noisy), tokenize(model, original)], None)
