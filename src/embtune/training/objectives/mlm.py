"""mlm: domain-adaptive masked-language-model pre-training (Gururangan et al. 2020) for models that ship an MLM head.

The encoder inside the sentence-transformers model is shared with a masked-LM model built on it, so continued
pre-training updates exactly the weights that are exported; the MLM head is dropped at export.
"""

from __future__ import annotations

import numpy as np
import torch

from embtune.errors import EmbtuneError
from embtune.training.objectives.base import Objective, tokenize


class MaskedLMObjective(Objective):
    name = "mlm"
    data = "texts"
    defaults = {"learning_rate": 5e-5, "batch_size": 32}
    summary = "continued masked-LM pre-training (needs a model folder with an MLM head)"

    def __init__(self, model, mask_probability: float = 0.15):
        super().__init__()
        from transformers import AutoModelForMaskedLM

        self.mask_probability = mask_probability
        encoder = model.transformers_model
        path = encoder.config._name_or_path
        try:
            mlm, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True, local_files_only=True)
        except (OSError, ValueError) as e:
            raise EmbtuneError(f"mlm: {path} cannot be loaded as a masked language model ({e})") from None
        head_missing = [k for k in info["missing_keys"] if not k.startswith(mlm.base_model_prefix + ".")]
        if head_missing:
            raise EmbtuneError(
                f"mlm: the model in {path} has no trained MLM head ({len(head_missing)} head weights missing, e.g. "
                f"{head_missing[0]}); masked-LM training would start from a random head. Use a label-free sentence "
                "objective (augment, simcse, ct) or a model folder saved with its MLM head"
            )
        setattr(mlm, mlm.base_model_prefix, encoder)  # share the encoder: training it trains the exported model
        mlm.tie_weights()
        self.mlm = mlm
        self.tokenizer = model.tokenizer

    def batch(self, items: list, rng: np.random.Generator):
        return [t[0] if isinstance(t, tuple) else t for t in items], int(rng.integers(2**31 - 1))

    def forward(self, model, batch):
        texts, seed = batch
        features = tokenize(model, texts)
        input_ids = features["input_ids"].clone()
        generator = torch.Generator().manual_seed(seed)
        special = torch.tensor(
            [self.tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True) for ids in input_ids.tolist()],
            dtype=torch.bool,
        ).to(input_ids.device)
        chosen = (torch.rand(input_ids.shape, generator=generator).to(input_ids.device) < self.mask_probability) & ~special
        chosen &= features["attention_mask"].bool()
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
        # BERT recipe: of the chosen tokens 80 % become [MASK], 10 % a random token, 10 % stay.
        roll = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
        input_ids[chosen & (roll < 0.8)] = self.tokenizer.mask_token_id
        random_tokens = torch.randint(len(self.tokenizer), input_ids.shape, generator=generator).to(input_ids.device)
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        input_ids[swap] = random_tokens[swap]
        out = self.mlm(
            input_ids=input_ids,
            attention_mask=features["attention_mask"],
            token_type_ids=features.get("token_type_ids"),
            labels=labels,
        )
        return out.loss
