"""Keras 3 callbacks (the seed's ``AIMDFitCallback`` / ``AIMDEvalCallback``) that record into an em_dist Run.

    from em_dist.keras import EMFitCallback, EMEvalCallback
    model.fit(x, y, validation_split=0.2, callbacks=[EMFitCallback(run)])
    model.evaluate(x_test, y_test, callbacks=[EMEvalCallback(run)])

Works on every Keras 3 backend (torch, JAX, TensorFlow): only ``keras.callbacks.Callback``
is used. Under
Horovod's or torchrun's several processes each rank's callback logs into its own ``Run``
object and em_dist gathers every rank's series into rank 0's one run.
"""

from __future__ import annotations

import threading
from typing import Any

import keras
import numpy as np

from .integrations._histograms import WEIGHTS, check_every, due, log_histograms
from .integrations._target import RunTarget
from .run import Run
from .trial import Trial

__all__ = ["EMFitCallback", "EMEvalCallback", "AIMDFitCallback", "AIMDEvalCallback"]

_VAL_PREFIX = "val_"


class _RunCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no type information
    """What both callbacks share: the run they record into and how often a batch is logged.

    Both are ``async_safe``: on the backends that allow it (torch, JAX) Keras runs their batch
    hooks on helper threads with the step's metric tensors unconverted, so the training thread
    never waits for a device; em_dist's ``log()`` takes the tensors as they are.
    """

    async_safe = True

    def __init__(self, run_or_trial: Run | Trial | None, log_every_n_batches: int, name: str) -> None:
        super().__init__()
        if isinstance(log_every_n_batches, bool) or not isinstance(log_every_n_batches, int) or log_every_n_batches < 0:
            raise ValueError(f"log_every_n_batches must be a non-negative integer, got {log_every_n_batches!r}")
        self._target = RunTarget(run_or_trial, name)
        self.log_every_n_batches = log_every_n_batches
        self._run: Run | None = None

    def _active(self) -> Run:
        """The run of the ``fit`` or ``evaluate`` in progress (its begin hook set it)."""
        run = self._run
        if run is None:
            raise RuntimeError(f"{type(self).__name__}: a batch or end hook ran before the begin hook")
        return run


class EMFitCallback(_RunCallback):
    """Records ``model.fit``: train metrics per batch and per epoch, validation per epoch, the compile setup as hparams.

    ``run_or_trial``: a Run, a Trial, or None (the live run of the process, else one named
    ``name`` created when training begins and finished when it ends). ``log_every_n_batches``:
    train metrics every n-th batch (0: only at the end of each epoch). Steps are the global
    batch count (continued across ``fit`` calls from the optimizer's iteration count); epochs
    count from 1, as Keras prints them. ``log_hparams=False`` leaves the hparams alone.
    ``histograms_every_n_batches``: every n-th step, one ``em.Histogram`` per weight tensor
    (named by its path, ``dense/kernel``) as type ``weights`` (None or 0, the default: none).
    Keras hands callbacks no gradients, so there are no gradient histograms here.

    The batch hook may run on Keras's helper threads (``async_safe``), so it derives everything
    from its ``batch`` argument and state set by the epoch hooks, which Keras calls in order
    after the batch hooks finished.
    """

    def __init__(
        self,
        run_or_trial: Run | Trial | None = None,
        log_every_n_batches: int = 1,
        log_hparams: bool = True,
        *,
        name: str = "keras",
        histograms_every_n_batches: int | None = None,
    ) -> None:
        super().__init__(run_or_trial, log_every_n_batches, name)
        self.log_hparams = log_hparams
        self.histograms_every_n_batches = check_every(histograms_every_n_batches, "histograms_every_n_batches")
        self._step = 0
        self._epoch = 1
        self._seen = 0
        self._seen_lock = threading.Lock()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._run = run = self._target.get()
        self._step = _optimizer_iterations(self.model)
        if self.log_hparams:  # what the user set themselves (their own "loss", say) is kept
            run.hparams.update(compile_hparams(self.model), override=False)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch, self._seen = epoch + 1, 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        with self._seen_lock:  # hooks may run on several helper threads, in any order
            self._seen = max(self._seen, batch + 1)
        step = self._step + batch + 1
        n = self.log_every_n_batches
        if logs and n and step % n == 0:
            self._active().log("train", logs, step=step, epoch=self._epoch)
        if due(self.histograms_every_n_batches, step):
            weights = ((v.path, _tensor(v.value)) for v in self.model.weights)
            log_histograms(self._active(), WEIGHTS, weights, step=step, epoch=self._epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._step += self._seen
        if not logs:
            return
        train = {k: v for k, v in logs.items() if not k.startswith(_VAL_PREFIX)}
        val = {k[len(_VAL_PREFIX):]: v for k, v in logs.items() if k.startswith(_VAL_PREFIX)}
        # Keras's batch values are running means over the epoch: the last batch's is the epoch's,
        # so the epoch's value is logged only when its last batch was not.
        n = self.log_every_n_batches
        if train and not (self._seen and n and self._step % n == 0):
            self._active().log("train", train, step=self._step, epoch=self._epoch)
        if val:
            self._active().log("val", val, step=self._step, epoch=self._epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._target.finish()


class EMEvalCallback(_RunCallback):
    """Records ``model.evaluate`` as type ``test``: the final metrics (and every n-th batch's when asked).

    The step is ``step`` when given, else the optimizer's iteration count (the global train
    step the model reached), so test points line up with the training curves. Per-batch
    points (``log_every_n_batches``) are type ``test_batch`` at the batch number.
    """

    def __init__(
        self,
        run_or_trial: Run | Trial | None = None,
        step: int | None = None,
        log_every_n_batches: int = 0,
        *,
        name: str = "keras",
    ) -> None:
        super().__init__(run_or_trial, log_every_n_batches, name)
        self.step = step
        self._at = 0

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._run = self._target.get()
        self._at = self.step if self.step is not None else _optimizer_iterations(self.model)

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        n = self.log_every_n_batches
        if logs and n and (batch + 1) % n == 0:
            self._active().log("test_batch", logs, step=batch + 1)

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        if logs:
            self._active().log("test", logs, step=self._at)
        self._target.finish()


AIMDFitCallback = EMFitCallback
"""The seed's name (``t9k.aimd.keras.AIMDFitCallback``)."""
AIMDEvalCallback = EMEvalCallback
"""The seed's name (``t9k.aimd.keras.AIMDEvalCallback``)."""


def compile_hparams(model: Any) -> dict[str, Any]:
    """What ``model.compile`` chose: optimizer class, learning rate and other config, loss and metric names."""
    out: dict[str, Any] = {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        config = dict(optimizer.get_config())
        config.pop("name", None)
        out["optimizer"] = type(optimizer).__name__
        lr = config.pop("learning_rate", None)
        if lr is not None:
            out["learning_rate"] = _as_typed(lr)
        out["optimizer_config"] = {k: _as_typed(v) for k, v in config.items()}
    compiled = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    compiled = compiled or {}
    loss = compiled.get("loss", getattr(model, "loss", None))
    if loss is not None:
        out["loss"] = _names(loss)
    metrics = compiled.get("metrics")
    if metrics:
        out["metrics"] = _names(metrics)
    return out


def _as_typed(value: Any) -> Any:
    """A float Keras keeps as float32 as the number the user typed: ``learning_rate=0.001`` is stored as
    float32 and reads back as 0.0010000000474974513; its shortest float32 repr is ``0.001``."""
    if isinstance(value, float) and not isinstance(value, bool):
        single = np.float32(value)
        if float(single) == value:  # exactly a float32: say it the way float32 prints it
            return float(np.format_float_positional(single, unique=True, trim="-"))
    return value


def _names(obj: Any) -> Any:
    """A loss or metric spec as names: strings stay, serialized objects give their class, lists map."""
    if isinstance(obj, str) or obj is None:
        return obj
    if isinstance(obj, (list, tuple)):
        return [_names(o) for o in obj]
    if isinstance(obj, dict):
        if "class_name" in obj:
            return obj.get("config", {}).get("name") or obj["class_name"]
        return {str(k): _names(v) for k, v in obj.items()}
    return getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _tensor(value: Any) -> Any:
    """A variable's value as ``em.Histogram`` takes it: a torch tensor or a JAX array as it is (cloned there,
    binned on the writer thread); a TensorFlow tensor, which it does not take, as a NumPy array."""
    if callable(getattr(value, "numel", None)) or callable(getattr(value, "copy", None)):
        return value
    return keras.ops.convert_to_numpy(value)


def _optimizer_iterations(model: Any) -> int:
    """The optimizer's step count (read once per fit/evaluate, not per batch)."""
    optimizer = getattr(model, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None)
    if iterations is None:
        return 0
    try:
        return int(keras.ops.convert_to_numpy(iterations))
    except Exception:  # noqa: BLE001 - an unbuilt optimizer has no count yet
        return 0
