"""Keras fit + evaluate with the em_dist callbacks on the backend KERAS_BACKEND names (a process of its own)."""

import numpy as np
import keras

import em_dist as em
from em_dist.keras import EMEvalCallback, EMFitCallback

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
rng = np.random.default_rng(0)
x, y = rng.random((32, 4), dtype=np.float32), rng.integers(0, 3, 32)
run = em.create_run(name=f"keras-{keras.backend.backend()}")
model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, callbacks=[EMFitCallback(run)], verbose=0)
model.evaluate(x, y, batch_size=16, callbacks=[EMEvalCallback(run)], verbose=0)
run.finish()
