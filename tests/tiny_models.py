"""Tiny models built inside the tests: a 2-layer BERT with a WordPiece tokenizer trained on a small corpus."""

from __future__ import annotations

import warnings
from pathlib import Path


def build_tiny_sentence_model(
    directory: Path, corpus: list[str], *, hidden: int = 32, seed: int = 0, mlm_head: bool = False,
    dropout: float = 0.1,
) -> Path:
    """Save a sentence-transformers folder (BERT 2x``hidden`` + mean pooling + normalize) to ``directory``.

    With ``mlm_head`` the underlying Hugging Face folder also holds a (random) masked-LM head; ``dropout=0`` makes
    training deterministic whatever the process layout (for the distributed tests).
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    # The vocabulary is built here, deterministically (tokenizers' WordPiece trainer breaks ties differently from run
    # to run, which made the tiny model - and what the tests measure on it - vary between runs): the special tokens,
    # every character (alone and as a ##continuation), then the most frequent words, ties broken alphabetically.
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: dict[str, int] = {}
    for text in corpus:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for word in counts for c in word})
    vocab_list = specials + chars + [f"##{c}" for c in chars]
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    vocab_list += words[: max(0, 600 - len(vocab_list))]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab_list)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    hf_dir = directory / "hf"
    (BertForMaskedLM if mlm_head else BertModel)(config).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformer = Transformer(str(hf_dir), max_seq_length=64)
        model = SentenceTransformer(modules=[transformer, Pooling(hidden, "mean"), Normalize()], device="cpu")
        out = directory / ("tiny-st-mlm" if mlm_head else "tiny-st")
        model.save(str(out))
    return out
