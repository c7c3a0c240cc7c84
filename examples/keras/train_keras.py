"""Track a single-process Keras 3 training with the seed's callbacks (torch backend by default).

The seed's Keras tutorial (``from t9k.aimd.keras import AIMDFitCallback, AIMDEvalCallback``)
with em_dist's names: ``EMFitCallback`` records train metrics per batch and per epoch,
validation per epoch and the compile setup (optimizer, learning rate, loss, metrics) as
hparams; ``EMEvalCallback`` records ``evaluate`` as ``test``. Synthetic MNIST-shaped data.

    KERAS_BACKEND=torch python examples/keras/train_keras.py [--epochs 2]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import em_dist as em  # noqa: E402
from em_dist.keras import EMEvalCallback, EMFitCallback  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--train-size", type=int, default=2048)
args = parser.parse_args()

run = em.create_run(name="mnist_keras")
run.hparams.update({"batch_size": 32, "epochs": args.epochs, "conv_channels": 16})

rng = np.random.default_rng(0)
labels = rng.integers(0, 10, args.train_size + 512)
images = rng.normal(0, 0.3, (len(labels), 28, 28, 1)).astype("float32")
images[np.arange(len(labels)), labels * 2 + 4, 10:18, 0] += 2.0  # a learnable mark per class
(x_train, y_train), (x_test, y_test) = (images[:-512], labels[:-512]), (images[-512:], labels[-512:])

model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Conv2D(run.hparams["conv_channels"], 3, activation="relu"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.2, verbose=2,
          callbacks=[EMFitCallback(run, log_every_n_batches=10)])
model.evaluate(x_test, y_test, verbose=2, callbacks=[EMEvalCallback(run)])
run.finish()
print(f"run saved in {run.path}")
