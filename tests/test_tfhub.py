"""TF Hub / SavedModel backend (optional extra embtune[tf]): tiny text and image SavedModels built here, used frozen
for encode/evaluate, fine-tuned by the TensorFlow loop (augment, autoencoder), saved and reloaded with hub.load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # TensorFlow


tf = pytest.importorskip("tensorflow", reason="TF Hub support is the optional extra embtune[tf] (installed by make test)")
hub = pytest.importorskip("tensorflow_hub")

import embtune  # noqa: E402
from embtune.encoders import load_encoder  # noqa: E402
from embtune.errors import EmbtuneError, ModelNotFoundError  # noqa: E402

VOCAB = ["card", "top", "up", "transfer", "money", "account", "pin", "atm", "cash", "fee", "refund", "exchange"]


class TinyText(tf.Module):
    """Strings -> lower-cased words -> a trainable embedding table -> mean -> a trainable dense layer."""

    def __init__(self, trainable: bool = True):
        super().__init__()
        keys = tf.constant(VOCAB)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(VOCAB), dtype=tf.int64)), default_value=len(VOCAB))
        init = tf.random.stateless_normal([len(VOCAB) + 1, 16], seed=[0, 1])
        dense = tf.random.stateless_normal([16, 8], seed=[0, 2])
        if trainable:
            self.embeddings, self.dense = tf.Variable(init), tf.Variable(dense)
        else:
            self.embeddings, self.dense = tf.constant(init), tf.constant(dense)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        words = tf.strings.split(tf.strings.lower(texts))
        ids = self.table.lookup(words)
        vectors = tf.ragged.map_flat_values(tf.nn.embedding_lookup, self.embeddings, ids)
        total = tf.reduce_sum(vectors, axis=1)
        count = tf.cast(tf.expand_dims(words.row_lengths(), -1), tf.float32)
        return tf.matmul(tf.math.divide_no_nan(total, count), self.dense)


class TinyImage(tf.Module):
    """(n, 16, 16, 3) floats -> a 3x3 conv (8 channels) -> ReLU -> global mean -> dense to 6."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal([3, 3, 3, 8], seed=[1, 1]) * 0.3)
        self.dense = tf.Variable(tf.random.stateless_normal([8, 6], seed=[1, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    def __call__(self, images):
        x = tf.nn.relu(tf.nn.conv2d(images, self.kernel, strides=1, padding="SAME"))
        return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), self.dense)


class IntInput(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def __call__(self, ids):
        return tf.cast(tf.stack([ids, ids], axis=1), tf.float32)


def _save(module, folder: Path) -> str:
    tf.saved_model.save(module, str(folder))
    return f"tfhub:{folder}"


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> str:
    return _save(TinyText(), tmp_path_factory.mktemp("tf_text") / "model")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    topics = [["card", "pin", "atm"], ["top", "up", "money"], ["transfer", "account", "fee"], ["refund", "exchange", "cash"]]
    rows = []
    for i in range(240):
        topic = topics[i % 4]
        words = list(rng.choice(topic, size=4)) + list(rng.choice(VOCAB, size=1))
        rows.append({"text": " ".join(words), "label": f"t{i % 4}"})
    path = tmp_path_factory.mktemp("tf_corpus") / "texts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_text_savedmodel_encodes_and_evaluates_as_a_frozen_encoder(text_model, corpus):
    encoder = load_encoder(text_model)
    assert encoder.modality == "text" and encoder.dim == 8
    vectors = encoder.encode(["card pin", "top up money", "unknown words only"])
    assert vectors.shape == (3, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    result = embtune.evaluate(corpus, model=text_model, seeds=1, cache=False)
    assert result.model.startswith("tfhub:") and "v_measure" in result.metrics.values


def test_image_savedmodel_reads_its_input_size_from_the_signature(tmp_path):
    from PIL import Image

    spec = _save(TinyImage(), tmp_path / "img")
    (tmp_path / "pics").mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 40 * i, dtype=np.uint8)).save(tmp_path / "pics" / f"{i}.png")
    encoder = load_encoder(spec)
    assert encoder.modality == "image" and encoder.model.image_size == 16 and encoder.dim == 6
    vectors = embtune.encode(str(tmp_path / "pics"), model=spec)
    assert vectors.shape == (3, 6)


def test_augment_finetune_trains_saves_a_hub_loadable_savedmodel_and_resumes_exactly(text_model, corpus, tmp_path):
    result = embtune.finetune(corpus, objective="augment", model=text_model, output=tmp_path / "a", max_steps=30,
                              batch_size=32, learning_rate=1e-2, write_report=False)
    assert result.steps == 30 and result.before and result.after
    values = [v for _, v in json.loads((tmp_path / "a" / "embtune.json").read_text())["losses"]]
    assert np.mean(values[-5:]) < np.mean(values[:3])  # the loss falls
    assert (tmp_path / "a" / "saved_model.pb").is_file() and (tmp_path / "a" / "embtune.json").is_file()
    reloaded = hub.load(str(tmp_path / "a"))
    base = hub.load(text_model[len("tfhub:"):])
    texts = tf.constant(["card pin atm", "top up"])
    assert not np.allclose(reloaded(texts).numpy(), base(texts).numpy())  # trained
    again = load_encoder(f"tfhub:{tmp_path / 'a'}").encode(["card pin atm"], normalize=False)
    assert np.allclose(again, reloaded(tf.constant(["card pin atm"])).numpy(), atol=1e-6)

    # killed after step 3, resumed: the same weights as the straight run
    class Killed(Exception):
        pass

    def kill_at_4(step, total, loss):
        if step == 4:
            raise Killed

    from embtune.encoders.tfhub import tfhub_path
    from embtune.training.tf_loop import finetune_tf
    from embtune.training.trainer import TrainConfig

    items = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    config = TrainConfig(max_steps=6, batch_size=32, learning_rate=1e-2, checkpoint_every=1)
    path = tfhub_path(text_model)
    straight, straight_model = finetune_tf(path, items, "augment", tmp_path / "s", config)
    with pytest.raises(Killed):
        finetune_tf(path, items, "augment", tmp_path / "k", config, on_step=kill_at_4)
    resumed, resumed_model = finetune_tf(path, items, "augment", tmp_path / "k", config, resume=True)
    assert [l for _, l in resumed.losses] == pytest.approx([l for _, l in straight.losses], abs=1e-5)
    for a, b in zip(straight_model.trainable_variables, resumed_model.trainable_variables):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_image_savedmodel_finetunes_with_augment_and_reloads_with_the_new_vectors(tmp_path):
    from PIL import Image

    spec = _save(TinyImage(), tmp_path / "img")
    (tmp_path / "pics" / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (18, 18, 3), dtype=np.uint8)).save(tmp_path / "pics" / "a" / f"{i}.png")
    before = load_encoder(spec).encode([str(tmp_path / "pics" / "a" / "0.png")], normalize=False)
    result = embtune.finetune(tmp_path / "pics", objective="augment", model=spec, output=tmp_path / "out",
                              max_steps=3, batch_size=16, learning_rate=1e-2, write_report=False)
    assert result.steps == 3
    after = load_encoder(f"tfhub:{tmp_path / 'out'}").encode([str(tmp_path / "pics" / "a" / "0.png")], normalize=False)
    assert after.shape == before.shape and not np.allclose(after, before)


def test_autoencoder_finetune_lowers_its_loss(text_model, corpus, tmp_path):
    result = embtune.finetune(corpus, objective="autoencoder", model=text_model, output=tmp_path / "ae", max_steps=30,
                              batch_size=32, learning_rate=1e-2, write_report=False)
    assert result.steps == 30
    values = [v for _, v in json.loads((tmp_path / "ae" / "embtune.json").read_text())["losses"]]
    assert np.mean(values[-5:]) < np.mean(values[:3])


def test_clear_errors_frozen_model_wrong_signature_url_and_missing_tensorflow(tmp_path, corpus, monkeypatch):
    frozen = _save(TinyText(trainable=False), tmp_path / "frozen")
    assert load_encoder(frozen).encode(["card"]).shape == (1, 8)  # usable frozen
    with pytest.raises(EmbtuneError, match="no trainable variables"):
        embtune.finetune(corpus, objective="augment", model=frozen, output=tmp_path / "x", max_steps=1)
    wrong = _save(IntInput(), tmp_path / "int")
    with pytest.raises(EmbtuneError, match="neither a batch of strings nor float images"):
        load_encoder(wrong).dim
    with pytest.raises(ModelNotFoundError, match="embtune never downloads"):
        load_encoder("tfhub:https://tfhub.dev/google/universal-sentence-encoder/4")
    with pytest.raises(EmbtuneError, match="TensorFlow models fine-tune with augment or autoencoder"):
        embtune.finetune(corpus, objective="simcse", model=frozen, output=tmp_path / "y", max_steps=1)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'embtune\[tf\]'"):
        load_encoder(frozen).dim


def test_a_keras_text_model_saved_with_tf_saved_model_save_loads_and_fine_tunes(corpus, tmp_path):
    keras = pytest.importorskip("tf_keras")
    text = keras.Input(shape=(), dtype=tf.string)
    ids = keras.layers.TextVectorization(vocabulary=VOCAB, output_mode="int", output_sequence_length=8)(text)
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(len(VOCAB) + 2, 16)(ids))
    model = keras.Model(text, keras.layers.Dense(8)(pooled))
    spec = _save(model, tmp_path / "keras")
    encoder = load_encoder(spec)
    assert encoder.modality == "text" and len(encoder.model.trainable_variables) == 3  # embedding, kernel, bias
    before = encoder.encode(["card pin atm"], normalize=False)
    embtune.finetune(corpus, objective="augment", model=spec, output=tmp_path / "out", max_steps=3, batch_size=32,
                     learning_rate=1e-2, write_report=False)
    after = hub.load(str(tmp_path / "out"))(tf.constant(["card pin atm"])).numpy()
    assert not np.allclose(after, before)
