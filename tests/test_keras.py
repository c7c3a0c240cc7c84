"""Keras 3 callbacks on the torch backend: train/val/test series, compile setup as hparams, the seed's names."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env
from tests.integrations.frameworks import WORKERS, require, series as _series

os.environ.setdefault("KERAS_BACKEND", "torch")


def series(rec, type: str, name: str, rank: int) -> list[tuple]:
    """By step: Keras may run the batch hooks of an async-safe callback on several helper threads."""
    return sorted(_series(rec, type, name, rank), key=lambda p: p[0])


@pytest.fixture(scope="module")
def keras():
    return require("keras")


def _model(keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _data(n: int = 32):
    rng = np.random.default_rng(0)
    return rng.random((n, 4), dtype=np.float32), rng.integers(0, 3, n)


def test_fit_and_evaluate_record_train_val_test_and_hparams(keras) -> None:
    from em_dist.keras import EMEvalCallback, EMFitCallback

    x, y = _data()
    model = _model(keras)
    run = em.create_run(name="keras")
    # 24 training samples in batches of 8: 3 batches per epoch, 2 epochs
    model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, callbacks=[EMFitCallback(run)], verbose=0)
    model.evaluate(x, y, batch_size=16, callbacks=[EMEvalCallback(run)], verbose=0)
    run.finish()
    rec = em.load_run(run.path)
    train = series(rec, "train", "loss", 0)
    assert [(s, e) for s, e, _ in train] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
    assert [(s, e) for s, e, _ in series(rec, "train", "accuracy", 0)] == [(s, e) for s, e, _ in train]
    assert [(s, e) for s, e, _ in series(rec, "val", "loss", 0)] == [(3, 1), (6, 2)]
    assert [(s, e) for s, e, _ in series(rec, "val", "accuracy", 0)] == [(3, 1), (6, 2)]
    test = series(rec, "test", "loss", 0)
    assert [(s, e) for s, e, _ in test] == [(6, None)]  # at the optimizer's step count
    assert {p["name"] for p in rec.metrics(type="test")} == {"loss", "accuracy"}
    assert all(np.isfinite(v) for _, _, v in train + test)
    h = rec.hparams
    assert h["optimizer"] == "Adam" and h["learning_rate"] == pytest.approx(1e-3)
    assert h["optimizer_config"]["beta_1"] == pytest.approx(0.9)
    assert h["loss"] == "sparse_categorical_crossentropy" and h["metrics"] == ["accuracy"]


def test_aimd_fit_callback_keeps_the_users_hparams_and_the_learning_rate_they_typed(keras) -> None:
    from em_dist.aimd.keras import AIMDFitCallback

    x, y = _data()
    model = _model(keras)
    trial = em.create_trial(trial_name="keras_hparams")
    trial.params.update({"loss": "my own loss", "epochs": 1})
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[AIMDFitCallback(trial)], verbose=0)
    trial.finish()
    h = em.load_run(trial.path).hparams
    assert h["loss"] == "my own loss" and h["epochs"] == 1  # the user's, not overwritten
    assert h["learning_rate"] == 0.001  # not float32's 0.0010000000474974513
    assert h["optimizer_config"]["beta_1"] == 0.9 and h["optimizer_config"]["epsilon"] == 1e-07


def test_every_n_batches_keeps_each_epochs_last_value_and_aimd_names_take_a_trial(keras) -> None:
    from em_dist.aimd.keras import AIMDEvalCallback, AIMDFitCallback
    from em_dist.keras import EMEvalCallback, EMFitCallback

    assert (AIMDFitCallback, AIMDEvalCallback) == (EMFitCallback, EMEvalCallback)
    x, y = _data()
    model = _model(keras)
    trial = em.create_trial(trial_name="cnn_keras")
    model.fit(x, y, batch_size=8, epochs=2, callbacks=AIMDFitCallback(trial, log_every_n_batches=2), verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, callbacks=AIMDFitCallback(trial, log_every_n_batches=0, log_hparams=False), verbose=0)
    model.evaluate(x, y, batch_size=8, callbacks=AIMDEvalCallback(trial, step=100, log_every_n_batches=1), verbose=0)
    trial.finish()
    rec = em.load_run(trial.path)
    # 4 batches per epoch: every 2nd batch, the second fit continues the step count and logs epoch ends only
    assert [(s, e) for s, e, _ in series(rec, "train", "loss", 0)] == [(2, 1), (4, 1), (6, 2), (8, 2), (10, 1)]
    assert "val" not in {p["type"] for p in rec.metrics()}
    assert [s for s, _, _ in series(rec, "test", "loss", 0)] == [100]
    assert [s for s, _, _ in series(rec, "test_batch", "loss", 0)] == [1, 2, 3, 4]
    assert rec.hparams["optimizer"] == "Adam"


def test_without_a_run_the_fit_callback_makes_and_finishes_one(keras) -> None:
    from em_dist.keras import EMFitCallback

    x, y = _data()
    callback = EMFitCallback(name="lazy")
    _model(keras).fit(x, y, batch_size=16, epochs=1, callbacks=[callback], verbose=0)
    runs = em.list_runs()
    assert [(r.name, r.status) for r in runs] == [("lazy", "Succeeded")]
    assert [s for s, _, _ in series(runs[0], "train", "loss", 0)] == [1, 2]
    with pytest.raises(TypeError, match="em_dist Run"):
        EMFitCallback("not a run")
    with pytest.raises(ValueError, match="log_every_n_batches"):
        EMFitCallback(log_every_n_batches=-1)


def test_batch_hook_runs_off_the_training_thread_on_the_torch_backend(keras) -> None:
    import threading

    from em_dist.keras import EMFitCallback

    threads: set[int] = set()

    class Watch(EMFitCallback):
        def on_train_batch_end(self, batch, logs=None):
            threads.add(threading.get_ident())
            super().on_train_batch_end(batch, logs)

    x, y = _data()
    run = em.create_run(name="async")
    _model(keras).fit(x, y, batch_size=8, epochs=1, callbacks=[Watch(run)], verbose=0)
    run.finish()
    assert threads and threading.get_ident() not in threads  # Keras's helper threads, not the training thread
    assert [s for s, _, _ in series(em.load_run(run.path), "train", "loss", 0)] == [1, 2, 3, 4]


def test_jax_backend(run_parent) -> None:
    require("jax")
    proc = subprocess.run([PYTHON, str(WORKERS / "keras_fit.py")], env=python_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [rec] = em.list_runs(run_parent)
    assert rec.name == "keras-jax" and rec.status == "Succeeded"
    assert [(s, e) for s, e, _ in series(rec, "train", "loss", 0)] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
    assert [s for s, _, _ in series(rec, "val", "accuracy", 0)] == [3, 6]
    assert [s for s, _, _ in series(rec, "test", "loss", 0)] == [6]
    assert rec.hparams["optimizer"] == "SGD" and rec.hparams["learning_rate"] == pytest.approx(0.01)


@pytest.mark.parametrize("every", [None, 2])
def test_fit_callback_weight_histograms_every_n_batches(keras, every) -> None:
    from em_dist.keras import EMFitCallback

    x, y = _data()
    model = _model(keras)
    run = em.create_run(name="keras_hist")
    # 32 samples in batches of 8: steps 1..4
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[EMFitCallback(run, histograms_every_n_batches=every)], verbose=0)
    run.finish()
    media = em.load_run(run.path).media()
    if every is None:
        assert media == []
        return
    assert {m.type for m in media} == {"weights"}
    names = [v.path for v in model.weights]
    assert sorted((m.step, m.name) for m in media) == sorted((s, n) for s in (2, 4) for n in names)
    kernel = [m for m in media if m.name == names[0] and m.step == 4][0]
    assert kernel.kind == "histogram" and sum(kernel.counts) == 4 * 8 and kernel.nonfinite == 0
