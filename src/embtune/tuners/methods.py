"""The tuners by the names the CLI and `embtune.tune` use, with the options they share."""

from __future__ import annotations

from dataclasses import dataclass

from embtune.errors import EmbtuneError


@dataclass(frozen=True)
class TuneMethod:
    name: str
    class_name: str
    needs_labels: bool
    epochs_param: str | None  # None: the method does not train (no epochs, learning rate or device)
    has_hidden_dim: bool
    summary: str


METHODS = {
    m.name: m
    for m in (
        TuneMethod("feedforward", "FeedForwardTuner", True, "n_epochs", True, "classifier head; its hidden layer is the embedding"),
        TuneMethod("contrastive", "ContrastiveTuner", True, "epochs", True, "pairs from labels, cosine matches same-label"),
        TuneMethod("autoencoder", "AutoencoderTuner", False, "n_epochs", True, "denoising bottleneck, no labels"),
        TuneMethod("infonce", "InfoNCETuner", False, "n_epochs", False, "SimCLR on vectors (noisy views or neighbours), no labels"),
        TuneMethod("neighborhood", "NeighborhoodTuner", False, None, False,
                   "moves each vector towards its close corpus neighbours; no labels, no training"),
        TuneMethod("spectral", "SpectralTuner", False, None, False,
                   "appends each vector's coordinates on the corpus's neighbour graph; no labels, no training"),
    )
}


def check_method(method: str) -> TuneMethod:
    """The method named ``method``, or an error listing them."""
    if method not in METHODS:
        raise EmbtuneError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    return METHODS[method]


def check_labels(spec: TuneMethod, data) -> None:
    """A method that learns from labels needs a corpus (``data``, a Corpus) that has them."""
    if spec.needs_labels and data.labels is None:
        raise EmbtuneError(
            f"--method {spec.name} learns from labels, and {data.describe()}; pass --labels FIELD, "
            "or use a label-free method (autoencoder, infonce)"
        )


def make_tuner(
    method: str,
    *,
    hidden_dim: int | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    positives: str | None = None,
    random_state: int | None = 0,
    device: str = "auto",
):
    """A tuner for ``method`` with the given options (None keeps the tuner's own default).

    >>> make_tuner("infonce", positives="neighbors", epochs=30)
    """
    from embtune import tuners

    spec = check_method(method)
    params: dict = {"random_state": random_state}
    if spec.epochs_param is None:
        given = [name for name, value in (("--epochs", epochs), ("--lr", learning_rate)) if value is not None]
        if given:
            verb = "does" if len(given) == 1 else "do"
            raise EmbtuneError(f"{' and '.join(given)} {verb} not apply to --method {method}: it does not train")
    else:
        params["device"] = device
        if epochs is not None:
            params[spec.epochs_param] = epochs
        if learning_rate is not None:
            params["learning_rate"] = learning_rate
    if hidden_dim is not None:
        if not spec.has_hidden_dim:
            raise EmbtuneError(f"--hidden-dim does not apply to --method {method}: its output width is not a hidden layer")
        params["hidden_dim"] = hidden_dim
    if positives is not None:
        if method != "infonce":
            raise EmbtuneError(f"--positives applies to --method infonce only, not {method}")
        params["positives"] = positives
    return getattr(tuners, spec.class_name)(**params)
