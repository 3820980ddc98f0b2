"""What every tuner shares: input checks, seeding, device choice, and save/load as safetensors + JSON.

Files written by :meth:`TunerBase.save`: ``config.json`` (the class name, its parameters and the fitted facts needed to
rebuild it) and ``model.safetensors`` (the weights). :func:`load_tuner` only instantiates classes from the registry
below and only reads tensors, so loading a file never runs code from it.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from embtune.atomic import atomic_open, atomic_write_text
from embtune.errors import EmbtuneError
from embtune.nn.device import resolve_device
from embtune.nn.optim import make_adam
from embtune.nn.seeding import seeded_init, torch_generator
from embtune.saved_config import FORMAT_VERSION, jsonable, read_saved_config, rebuilding

TUNERS: dict[str, type[TunerBase]] = {}  # filled as tuner classes are defined
_TUNER_MODULES = ("feedforward", "contrastive", "autoencoder", "infonce", "neighborhood", "spectral")


def as_float_tensor(x: np.ndarray, device: str) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)


def float64_inference(module: torch.nn.Module, X: np.ndarray, device: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """An eval-mode float64 copy of ``module`` and ``X`` as a float64 tensor beside it, for inference.

    float32 BLAS kernels may round a row differently depending on where it falls in the batch, so a row's embedding
    could change in the last bit when the rows around it change (scikit-learn's sample-order check catches it). In
    float64 those differences stay far below float32 resolution, so the float32 output depends on the row alone.
    Apple's MPS has no float64, so a tuner trained there infers on the CPU.
    """
    device = "cpu" if str(device).startswith("mps") else device
    x = torch.as_tensor(np.asarray(X), device=device).double()
    return copy.deepcopy(module).to(device).double().eval(), x










def check_no_missing_labels(y, estimator: str) -> None:
    """Refuse labels with gaps (None or NaN): say how many and where, instead of failing deep inside numpy.

    ``y=None`` (no labels at all) is left to scikit-learn's own check and message.
    """
    if y is None:
        return
    y = np.asarray(y, dtype=object).ravel()
    missing = np.flatnonzero([v is None or (isinstance(v, float) and v != v) for v in y])
    if len(missing):
        rows = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise ValueError(f"y has {len(missing)} missing label(s) (None or NaN) at row(s) {rows}; {estimator} needs a "
                         "label for every row: drop those rows or fill them in")




class TunerBase(TransformerMixin, BaseEstimator):
    """Base of every tuner: scikit-learn parameters, a torch module in ``model_``, and safetensors save/load.

    Subclasses implement ``_fitted_state()`` (JSON-able facts to rebuild the module) and ``_rebuild(state)``.
    """

    _module_attr: ClassVar[str] = "model_"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        TUNERS[cls.__name__] = cls

    # -- persistence ----------------------------------------------------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        """JSON-able facts needed to rebuild the module; by default its input width and the training history."""
        return {"n_features_in_": self.n_features_in_, "history_": self.history_, "n_epochs_": self.n_epochs_}

    def _rebuild(self, state: dict[str, Any]) -> None:
        """Recreate an untrained module of the saved shape (the weights are loaded after), via ``_setup``."""
        self._setup(state["n_features_in_"])
        self.history_, self.n_epochs_ = state["history_"], state["n_epochs_"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32"]  # embeddings are float32 whatever comes in
        return tags

    def _module(self) -> torch.nn.Module:
        return getattr(self, self._module_attr)

    def _build(self, make_module) -> torch.nn.Module:
        """Once for every tuner: the device, the seeded generator, the module ``make_module()`` returns (initialised
        from that generator, moved to the device, stored in ``_module_attr``) and its Adam optimizer."""
        self.device_ = resolve_device(self.device)
        self._generator = torch_generator(self.random_state)
        with seeded_init(self._generator):
            module = make_module()
        module.to(self.device_)
        setattr(self, self._module_attr, module)
        self.optimizer_ = make_adam(module, self.learning_rate)
        return module

    def _validation_split(self, n: int, test_size: int | float, stratify=None) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (train, held out) for early stopping, drawn from the tuner's generator (so ``random_state``
        fixes them); ``test_size`` and ``stratify`` as in scikit-learn's ``train_test_split``."""
        from sklearn.model_selection import train_test_split

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator))
        return train_test_split(np.arange(n), test_size=test_size, random_state=seed, stratify=stratify)

    def _run_epochs(self, loss, data, generator, validation) -> None:
        """The shared loop with this tuner's epochs, batch size and stopping rule; records the history attributes."""
        from embtune.nn.epochs import run_epochs

        record = run_epochs(self.model_, self.optimizer_, loss, data, n_epochs=self.n_epochs, batch_size=self.batch_size,
                            generator=generator, validation=validation, n_iter_no_change=self.n_iter_no_change,
                            tol=self.tol, name=type(self).__name__)
        self.history_, self.validation_history_ = record.train_loss, record.val_loss
        self.n_epochs_, self.best_epoch_ = record.epochs, record.best_epoch

    def _encoder_output(self, X) -> np.ndarray:
        """``model_.encoder`` applied to validated ``X`` in eval mode (computed in float64), as float32 numpy."""
        from sklearn.utils.validation import validate_data

        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        with torch.no_grad():
            encoder, x = float64_inference(self.model_.encoder, X, self.device_)
            return encoder(x).float().cpu().numpy()

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into the folder ``path`` (created; files replaced atomically).

        >>> tuner.save("my-tuner/")
        >>> same = load_tuner("my-tuner/")
        """
        from safetensors.torch import save

        check_is_fitted(self)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self._module().state_dict().items()}
        with atomic_open(path / "model.safetensors", "wb") as f:
            f.write(save(tensors))
        config = {
            "embtune_tuner": type(self).__name__,
            "format": FORMAT_VERSION,
            "params": jsonable(self.get_params(deep=False)),
            "fitted": jsonable(self._fitted_state()),
        }
        atomic_write_text(path / "config.json", json.dumps(config, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TunerBase:
        """Load a tuner saved with :meth:`save`; ``FeedForwardTuner.load(p)`` checks the class, ``TunerBase.load`` does not."""
        tuner = load_tuner(path)
        if cls is not TunerBase and not isinstance(tuner, cls):
            raise EmbtuneError(f"{path} holds a {type(tuner).__name__}, not a {cls.__name__}")
        return tuner


def load_tuner(path: str | Path) -> TunerBase:
    """Rebuild any saved tuner from its folder (safetensors + JSON; never unpickles, never runs code from the file).

    A folder whose files were cut short, edited or mixed up (weights of another shape than config.json describes,
    a parameter of the wrong type) fails with one :class:`EmbtuneError` naming the folder; the module is first built on
    torch's meta device and compared with the saved tensor shapes, so an absurd size in config.json allocates nothing,
    and the rebuilt tuner transforms one row before it is returned.
    """
    for module in _TUNER_MODULES:  # define (and so register) every tuner class
        importlib.import_module(f"embtune.tuners.{module}")
    path = Path(path)
    config = read_saved_config(path, key="embtune_tuner", known=TUNERS, what="tuner",
                               how="tuner.save(path) or `embtune tune -o`")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise EmbtuneError(f"{path}: the tuner folder has no model.safetensors; make it again with `embtune tune -o`")
    with rebuilding(path, what="tuner", how="make it again with `embtune tune -o`"):
        return _rebuild_tuner(config, weights)


def _rebuild_tuner(config: dict[str, Any], weights: Path) -> TunerBase:
    from safetensors import safe_open
    from safetensors.torch import load_file

    cls = TUNERS[config["embtune_tuner"]]
    if not isinstance(config.get("params"), dict) or not isinstance(config.get("fitted"), dict):
        raise ValueError("config.json needs 'params' and 'fitted' objects")
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    params = {k: tuple(v) if isinstance(defaults.get(k), tuple) and isinstance(v, list) else v for k, v in config["params"].items()}
    with safe_open(str(weights), framework="pt", device="cpu") as f:
        saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    with torch.device("meta"):  # shapes only: nothing is allocated, whatever sizes config.json claims
        probe = cls(**{**params, "device": "meta"} if "device" in defaults else params)
        probe._rebuild(config["fitted"])
        expected = {k: tuple(v.shape) for k, v in probe._module().state_dict().items()}
    if expected != saved:
        differ = sorted(k for k in set(expected) | set(saved) if expected.get(k) != saved.get(k))[:3]
        shown = "; ".join(f"{k}: config.json gives {expected.get(k)}, model.safetensors holds {saved.get(k)}" for k in differ)
        raise ValueError(f"config.json and model.safetensors disagree ({shown})")
    tuner = cls(**params)
    tuner._rebuild(config["fitted"])
    state = load_file(str(weights), device="cpu")
    module = tuner._module()
    module.load_state_dict(state)
    module.to(resolve_device(getattr(tuner, "device", "cpu")))
    module.eval()
    # one row through it: a parameter of the wrong type or range (an edited config.json) fails here, not in a user's run
    with np.errstate(all="ignore"):
        tuner.transform(np.zeros((1, tuner.n_features_in_), dtype=np.float32))
    return tuner
