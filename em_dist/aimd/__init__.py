"""The older ``aimd`` API of the same SDK: ``from em_dist import aimd`` in place of ``from t9k import aimd``.

    trial = aimd.create_trial(trial_name="cnn_keras", folder_path="image_classification/mnist")
    model.fit(..., callbacks=aimd.keras.AIMDFitCallback(trial))   # after `import em_dist.aimd.keras`
"""

from __future__ import annotations

from .. import login, logout, upload
from ..trial import Trial, create_trial

__all__ = ["Trial", "create_trial", "login", "logout", "upload"]
