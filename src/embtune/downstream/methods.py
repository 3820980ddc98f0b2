"""The classifiers `embtune classify --method` names, built from one place."""

from __future__ import annotations

from embtune.errors import EmbtuneError

CLASSIFY_METHODS = ("textcnn", "fewshot", "logreg")


def make_classifier(method: str, *, model: str = "all-MiniLM-L6-v2", frozen: bool | None = None, seed: int = 0,
                    device: str = "auto", **options):
    """A classifier for ``method``: textcnn (frozen token embeddings unless ``frozen=False``), fewshot (fine-tuned
    encoder unless ``frozen=True``), logreg (logistic regression on the frozen sentence vectors)."""
    from embtune.downstream.fewshot import FewShotClassifier
    from embtune.downstream.textcnn import TextCNNClassifier

    if method == "textcnn":
        return TextCNNClassifier(model=model, embeddings="trainable" if frozen is False else "frozen",
                                 random_state=seed, device=device, **options)
    if method == "fewshot":
        return FewShotClassifier(model=model, frozen=bool(frozen), random_state=seed, device=device, **options)
    if method == "logreg":
        if frozen is False:
            raise EmbtuneError("--method logreg is a head on frozen vectors; use --method fewshot to train the encoder")
        return FewShotClassifier(model=model, epochs=0, random_state=seed, device=device, **options)
    raise EmbtuneError(f"--method {method!r}: use one of {', '.join(CLASSIFY_METHODS)}")


def method_options(method: str, epochs: float | None, show_progress: bool, label_names: bool | None = None) -> dict:
    """The classifier options the CLI's --epochs, --label-names/--no-label-names (and progress) mean for ``method``."""
    options: dict = {}
    if label_names is not None:
        if method == "textcnn":
            raise EmbtuneError("--label-names/--no-label-names apply to --method fewshot and logreg, not textcnn")
        options["label_names"] = label_names
    if epochs is not None:
        options["n_epochs" if method == "textcnn" else "epochs"] = int(epochs) if method == "textcnn" else epochs
    if method == "fewshot" and show_progress:
        options["show_progress"] = True
    return options
