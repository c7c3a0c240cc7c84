"""The Run API on one process: what a user logs is what load_run gives back."""

from __future__ import annotations

import argparse
import json
import math
import warnings

import numpy as np
import pytest

import em_dist as em
from em_dist.store import layout
from tests.poll import wait_for


@pytest.mark.parametrize(
    "alias, expected",
    [
        ("train", "train"), ("training", "train"),
        ("val", "val"), ("validate", "val"), ("validation", "val"),
        ("test", "test"), ("testing", "test"), ("eval", "test"), ("evaluate", "test"), ("evaluation", "test"),
        ("Training", "train"), ("my_custom", "my_custom"),
    ],
)
def test_type_aliases_are_normalised(alias: str, expected: str) -> None:
    run = em.create_run(name="aliases")
    run.log(type=alias, metrics={"loss": 1.5}, step=3)
    run.finish()
    [point] = em.load_run(run.path).metrics()
    assert point["type"] == expected
    assert point["value"] == 1.5 and point["step"] == 3 and point["epoch"] is None and point["rank"] == 0


def test_every_point_comes_back_with_step_epoch_and_value() -> None:
    run = em.create_run(name="points")
    for step in range(50):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1), "acc": step / 50}, step=step, epoch=step // 10)
    run.log(type="val", metrics={"loss": 0.25}, step=49, epoch=4.5)
    run.finish()
    rec = em.load_run(run.path)
    assert rec.status == "Succeeded"
    loss = rec.metrics(type="train", name="loss")
    assert [p["step"] for p in loss] == list(range(50))
    assert [p["value"] for p in loss] == [1.0 / (s + 1) for s in range(50)]
    assert [p["epoch"] for p in loss] == [s // 10 for s in range(50)]
    assert rec.metrics(type="val") == [
        {"type": "val", "name": "loss", "value": 0.25, "step": 49, "epoch": 4.5, "rank": 0, "time": rec.metrics(type="val")[0]["time"],
         "attempt": 0}
    ]


def test_numpy_torch_and_tensorflow_like_values() -> None:
    torch = pytest.importorskip("torch")

    class EagerTensor:  # the duck type of a TensorFlow eager tensor: .numpy() gives an ndarray
        def __init__(self, v: float) -> None:
            self._v = np.array([v], dtype=np.float32)

        def numpy(self) -> np.ndarray:
            return self._v

    run = em.create_run(name="values")
    run.log(
        type="train",
        metrics={
            "np_scalar": np.float32(0.5),
            "np_array": np.array([0.25]),
            "np_int": np.int64(7),
            "torch_0d": torch.tensor(1.5),
            "torch_1elem": torch.tensor([2.5], requires_grad=True) * 1,
            "torch_int": torch.tensor(3),
            "tf_like": EagerTensor(4.5),
            "flag": True,
            "nan": float("nan"),
            "inf": math.inf,
            "ninf": -math.inf,
        },
        step=np.int64(1),
    )
    run.finish()
    got = {p["name"]: p["value"] for p in em.load_run(run.path).metrics()}
    assert got["np_scalar"] == 0.5 and got["np_array"] == 0.25 and got["np_int"] == 7
    assert got["torch_0d"] == 1.5 and got["torch_1elem"] == 2.5 and got["torch_int"] == 3
    assert got["tf_like"] == 4.5 and got["flag"] == 1
    assert math.isnan(got["nan"]) and got["inf"] == math.inf and got["ninf"] == -math.inf
    # every line is strict JSON (no bare NaN/Infinity tokens)
    for line in layout.metrics_file(run.path, 0).read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_logged_tensor_is_copied_not_referenced() -> None:
    torch = pytest.importorskip("torch")
    run = em.create_run(name="inplace")
    acc = torch.tensor(1.0)
    run.log(type="train", metrics={"acc": acc}, step=0)
    acc += 100  # in-place update after log() must not change the logged value
    run.finish()
    assert em.load_run(run.path).metrics()[0]["value"] == 1.0


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(metrics={"loss": np.array([1.0, 2.0])}, step=1), ValueError, "'loss'"),
        (dict(metrics={"loss": "0.3"}, step=1), TypeError, "'loss'"),
        (dict(metrics={"": 1.0}, step=1), ValueError, "empty"),
        (dict(metrics={3: 1.0}, step=1), TypeError, "3"),
        (dict(metrics={"loss": 1.0}, step=-1), ValueError, "non-negative"),
        (dict(metrics={"loss": 1.0}, step=1.5), TypeError, "step"),
        (dict(metrics={"loss": 1.0}, step=True), TypeError, "step"),
        (dict(metrics={"loss": 1.0}, step="1"), TypeError, "step"),
        (dict(metrics=[("loss", 1.0)], step=1), TypeError, "dict"),
        (dict(metrics={}, step=1), ValueError, "at least one"),
        (dict(metrics={"loss": 1.0}, step=1, epoch="one"), TypeError, "epoch"),
        (dict(metrics={"loss": 1.0}, step=1, type=""), ValueError, "type"),
        (dict(metrics={"loss": 1.0}, step=1, type=None), TypeError, "type"),
        (dict(metrics={"ok": 1.0, "bad": object()}, step=1), TypeError, "'bad'"),
    ],
)
def test_bad_input_raises_at_the_call_and_writes_nothing(kwargs: dict, error: type, fragment: str) -> None:
    run = em.create_run(name="bad")
    kwargs.setdefault("type", "train")
    with pytest.raises(error, match=fragment if fragment != "3" else None):
        run.log(**kwargs)
    run.log(type="train", metrics={"good": 1.0}, step=2)
    run.finish()
    points = em.load_run(run.path).metrics()
    assert [(p["name"], p["step"]) for p in points] == [("good", 2)]


@pytest.mark.parametrize(
    "args, kwargs, fragment",
    [
        (({"loss": 1.0},), {}, "got a dict as the first argument"),  # W&B's call shape
        (({"loss": 1.0},), {"step": 3}, "got a dict as the first argument"),
        (("train", {"loss": 1.0}), {}, "needs step"),
        (("train",), {}, "needs metrics and step"),
    ],
)
def test_log_of_another_trackers_shape_says_what_the_call_looks_like(args: tuple, kwargs: dict, fragment: str) -> None:
    run = em.create_run(name="shape")
    with pytest.raises(TypeError, match=fragment) as caught:
        run.log(*args, **kwargs)
    assert "run.log(type='train', metrics={'loss': 0.3}, step=step)" in str(caught.value)
    run.finish()
    assert em.load_run(run.path).metrics() == []


def test_hparams_reach_disk_without_a_call() -> None:
    run = em.create_run(name="hp", hparams={"seed": 1}, flush_interval=0.05)
    run.hparams.update({"batch_size": 32, "optimizer": "Adam", "lr": 1e-3})
    run.hparams["epochs"] = 10
    run.hparams.update({"seed": 99}, override=False)
    run.hparams.update(argparse.Namespace(dropout=0.5, layers=(64, 32)))
    expected = {"seed": 1, "batch_size": 32, "optimizer": "Adam", "lr": 1e-3, "epochs": 10, "dropout": 0.5, "layers": [64, 32]}
    assert dict(run.hparams) == expected and run.hparams["lr"] == 1e-3
    path = run.path / layout.HPARAMS_FILE
    wait_for(lambda: path.exists() and json.loads(path.read_text()) == expected, 5, "the hparams file")
    run.finish()
    assert em.load_run(run.path).hparams == expected


def test_hparam_that_json_cannot_hold_is_stored_as_repr_with_one_warning() -> None:
    run = em.create_run(name="hp-repr")

    class Opt:
        def __repr__(self) -> str:
            return "Opt(momentum=0.9)"

    with pytest.warns(em.EMWarning, match="repr"):
        run.hparams["opt"] = Opt()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.hparams["opt2"] = Opt()  # same type: no second warning
    run.finish()
    assert em.load_run(run.path).hparams == {"opt": "Opt(momentum=0.9)", "opt2": "Opt(momentum=0.9)"}


def test_hparam_names_must_be_strings() -> None:
    run = em.create_run(name="hp-bad")
    with pytest.raises(TypeError):
        run.hparams[1] = 2
    with pytest.raises(ValueError):
        run.hparams.update({"": 1})
    run.finish()


def test_lineage_and_artifact_files(tmp_path) -> None:
    import hashlib

    data = tmp_path / "model_state_dict.pt"
    data.write_bytes(b"weights" * 1000)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "a.txt").write_text("a")
    (tmp_path / "ckpt" / "sub").mkdir()
    (tmp_path / "ckpt" / "sub" / "b.txt").write_text("bb")

    producer = em.create_run(name="producer")
    model = em.create_artifact(name="mnist_model", labels=["torch"], description="weights")
    model.add_file(str(data))
    model.add_dir(tmp_path / "ckpt")
    model.add_reference("s3://bucket/data/train.csv")
    producer.mark_output(model)
    producer.finish()

    consumer = em.create_run(name="consumer")
    consumer.mark_input(model.path)  # a saved artifact by path works too
    consumer.finish()

    rec = em.load_run(producer.path)
    [ref] = rec.artifacts
    assert (ref.id, ref.name, ref.role) == (model.id, "mnist_model", "output")
    files = {f["path"]: f for f in ref.files}
    assert set(files) == {"model_state_dict.pt", "ckpt/a.txt", "ckpt/sub/b.txt"}
    assert files["model_state_dict.pt"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert files["model_state_dict.pt"]["size"] == 7000
    [cref] = em.load_run(consumer.path).artifacts
    assert (cref.id, cref.role) == (model.id, "input")
    art = em.load_artifact(model.path)
    assert art.references == [{"uri": "s3://bucket/data/train.csv", "path": "train.csv"}]
    assert (model.path / "files" / "ckpt" / "sub" / "b.txt").read_text() == "bb"


def test_artifact_misuse_is_reported_at_the_call(tmp_path) -> None:
    art = em.create_artifact(name="a")
    with pytest.raises(FileNotFoundError):
        art.add_file(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError):
        art.add_dir(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"\.\."):
        art.add_file(tmp_path / "f", obj_path="../escape")
    with pytest.raises(ValueError):
        art.add_file(tmp_path / "f", obj_path="/abs")
    run = em.create_run(name="r")
    with pytest.raises(TypeError):
        run.mark_output("not-an-artifact-folder" and 42)
    run.finish()


def test_context_manager_marks_failed_and_reraises() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with em.create_run(name="ctx") as run:
            run.log(type="train", metrics={"loss": 1.0}, step=0)
            raise RuntimeError("boom")
    rec = em.load_run(run.path)
    assert rec.status == "Failed" and "RuntimeError: boom" in rec.status_reason
    assert len(rec.metrics()) == 1
    with em.create_run(name="ok") as run2:
        run2.log(type="train", metrics={"loss": 1.0}, step=0)
    assert em.load_run(run2.path).status == "Succeeded"


def test_status_moves_initializing_running_succeeded() -> None:
    run = em.create_run(name="status", flush_interval=0.05)
    run_json = run.path / layout.RUN_FILE
    wait_for(lambda: run_json.exists() and json.loads(run_json.read_text())["status"] == "Initializing", 5, "status Initializing")
    run.log(type="train", metrics={"loss": 1.0}, step=0)
    assert run.status == "Running"
    wait_for(lambda: json.loads(run_json.read_text())["status"] == "Running", 5, "status Running")
    run.finish()
    rec = em.load_run(run.path)
    assert rec.status == "Succeeded" and rec.end_timestamp is not None
    run.finish()  # idempotent


def test_log_after_finish_is_ignored_with_a_warning() -> None:
    run = em.create_run(name="late")
    run.finish()
    with pytest.warns(em.EMWarning, match="finished"):
        run.log(type="train", metrics={"loss": 1.0}, step=0)
    assert em.load_run(run.path).metrics() == []


def test_create_run_arguments_and_config_file(tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("name: from_yaml\nlabels: [a, b]\ndescription: d\nhparams: {lr: 0.1}\nfolder: team/x\n")
    run = em.create_run(config_path=cfg, description="explicit wins")
    assert (run.name, run.labels, run.description, run.folder) == ("from_yaml", ["a", "b"], "explicit wins", "team/x")
    assert run.hparams["lr"] == 0.1
    assert run.path.name.startswith("from_yaml_")
    run.finish()
    for bad in (dict(name=""), dict(name="a/b"), dict(conflict_strategy="merge"), dict(labels="x"), dict(flush_interval=0)):
        with pytest.raises((ValueError, TypeError)):
            em.create_run(**bad)
    cfg.write_text("nmae: typo\n")
    with pytest.raises(ValueError, match="nmae"):
        em.create_run(config_path=cfg)


def test_alternative_name_and_folder_layout(run_parent) -> None:
    import re

    run = em.create_run(name="mnist_torch")
    run.finish()
    assert run.path.parent == run_parent.resolve()
    assert re.fullmatch(r"mnist_torch_\d{6}_\d{6}_[a-z0-9]{6}", run.alternative_name)
    rec = em.load_run(run.alternative_name)  # by alternative name under $EM_RUN_PARENT_DIR
    assert rec.id == run.id
    assert [r.id for r in em.list_runs()] == [run.id]


def test_platform_and_world_recorded() -> None:
    run = em.create_run(name="plat")
    run.finish()
    rec = em.load_run(run.path)
    assert rec.world["size"] == 1
    assert "0" in rec.platform["ranks"] and rec.platform["world"]["size"] == 1


def test_load_run_refuses_newer_format(tmp_path) -> None:
    run = em.create_run(name="fmt")
    run.finish()
    meta = json.loads((run.path / "run.json").read_text())
    meta["format_version"] = 99
    (run.path / "run.json").write_text(json.dumps(meta))
    with pytest.raises(em.RunFormatError, match="99"):
        em.load_run(run.path)
    with pytest.raises(em.RunFormatError):
        em.load_run(tmp_path / "nowhere")


def test_aimd_trial_facade() -> None:
    trial = em.create_trial(trial_name="cnn_keras", folder_path="image_classification/mnist", make_folder=True)
    trial.params.update({"lr": 0.01})
    trial.params["batch"] = 64
    trial.log(metrics_type="training", metrics={"loss": 0.7}, step=1, epoch=0)
    trial.log(metrics_type="evaluation", metrics={"acc": 0.9}, step=1)
    trial.finish()
    rec = em.load_run(trial.path)
    assert rec.name == "cnn_keras" and rec.hparams == {"lr": 0.01, "batch": 64}
    assert [(p["type"], p["name"]) for p in rec.metrics()] == [("train", "loss"), ("test", "acc")]
    meta = json.loads((trial.path / "run.json").read_text())
    assert (meta["folder"], meta["make_folder"]) == ("image_classification/mnist", True)
    t2 = em.create_trial("x", folder_path="p", folder_id="1234")
    t2.finish()
    assert json.loads((t2.path / "run.json").read_text())["folder_id"] == "1234"


def test_public_surface_is_exactly_all() -> None:
    import pkgutil

    public = {n for n in dir(em) if not n.startswith("_")}
    modules = {m.name for m in pkgutil.iter_modules(em.__path__)}  # submodules appear once imported
    assert public - modules == set(em.__all__) - {"Client"}
    assert em.Client is not None and "Client" in em.__all__


def test_torch_imported_after_create_run_is_still_recorded(tmp_path):
    """Platform facts of a torch the script imports only after create_run are probed at the end."""
    import subprocess

    from tests.conftest import PYTHON, python_env

    pytest.importorskip("torch")
    script = ("import em_dist as em, sys\n"
              "run = em.create_run(name='late-torch')\n"
              "assert 'torch' not in sys.modules\n"
              "import torch\n"
              "run.finish()\n"
              "print(run.path)\n")
    proc = subprocess.run([PYTHON, "-c", script], env=python_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rec = em.load_run(proc.stdout.strip())
    import torch

    platform = rec.platform["ranks"]["0"]
    assert platform["torch"] == torch.__version__
    assert platform["cuda_available"] is torch.cuda.is_available()
    assert platform["device"] == ("cpu" if not torch.cuda.is_available() else None)


def test_create_run_keeps_the_original_sdks_argument_order(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("name: from-config\nlabels: [a]\n")
    run = em.create_run(str(cfg))  # positional: config_path first, as the original SDK
    run.finish()
    assert run.name == "from-config" and run.labels == ["a"]
    run = em.create_run(None, "positional-name", {"lr": 0.1})
    run.finish()
    assert run.name == "positional-name" and dict(run.hparams) == {"lr": 0.1}
    with pytest.raises(FileNotFoundError, match=r"did you mean create_run\(name='mnist'\)"):
        em.create_run("mnist")


def test_records_dropped_past_max_pending_are_counted_and_warned() -> None:
    """A writer starved of the GIL (a 50 ms switch interval) behind a loop that logs 20,000 records
    with max_pending=2000: what is not written was dropped, counted exactly and warned about (the
    warning used to fire only when max_pending was a multiple of 1024, the drops never counted)."""
    import sys

    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = em.create_run(name="drops", max_pending=2000, flush_interval=5.0, capture_output=False,
                                system_metrics_interval=0)
            for i in range(20_000):
                run.log(type="train", metrics={"loss": float(i)}, step=i)
            sys.setswitchinterval(switch)
            run.finish()
    finally:
        sys.setswitchinterval(switch)
    rec = em.load_run(run.path)
    written, dropped = len(rec.metrics(name="loss")), rec.dropped["0"]["records"]
    assert dropped > 0 and written + dropped == 20_000, (written, dropped)
    assert [p["step"] for p in rec.metrics(name="loss")][-1] == 19_999  # the newest are kept
    said = [str(w.message) for w in caught]
    assert any("records are waiting to be written; the oldest are being dropped" in m for m in said), said
    assert any("dropped records to bound memory" in m and str(dropped) in m for m in said), said


def test_a_run_pickled_and_unpickled_in_its_own_process_is_the_same_run() -> None:
    """copy.deepcopy or a pickle round trip (a framework copying its loggers) gives back the live Run."""
    import copy
    import pickle

    run = em.create_run(name="roundtrip")
    assert pickle.loads(pickle.dumps(run)) is run
    assert copy.deepcopy({"run": run})["run"] is run
    run.finish()


def _log_in_child(run, queue) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log("train", {"loss": 1.0}, step=0)
    queue.put([str(w.message) for w in caught])


def test_a_finished_run_handed_to_a_spawned_process_says_nothing_is_kept_there() -> None:
    """Only a live single-process run can be continued by spawned ranks; any other says so once, and keeps nothing."""
    import multiprocessing

    run = em.create_run(name="handed")
    run.finish()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_log_in_child, args=(run, queue))
    child.start()
    messages = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert len(messages) == 1 and "is finished" in messages[0] and "not kept" in messages[0]
    assert "Create a run in this process" in messages[0]


def test_hparams_set_after_finish_are_warned_about_not_dropped_silently() -> None:
    run = em.create_run(name="late_hparams")
    run.hparams["lr"] = 0.1
    run.finish()
    with pytest.warns(em.EMWarning, match="hparams set after finish\\(\\) are not recorded") as caught:
        run.hparams["lr"] = 0.2
        run.hparams.update({"batch": 32})
    assert len(caught) == 1 and caught[0].filename == __file__  # once, pointing at the user's line
    assert em.load_run(run.path).hparams == {"lr": 0.1}


def test_create_run_where_nothing_can_be_written_fails_at_the_call(tmp_path, monkeypatch) -> None:
    """Not a warning later that a run.json that never existed "still says the run is live"."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(blocker / "runs"))  # as unwritable as a read-only folder, also for root
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning on the way
        with pytest.raises(OSError, match=r"create_run: cannot write in .*a-file/runs.*EM_RUN_PARENT_DIR"):
            em.create_run(name="nowhere")
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "ok"))
    run = em.create_run(name="somewhere")  # the failed call left nothing behind that stops the next
    run.finish()
    assert em.load_run(run.path).status == "Succeeded"
