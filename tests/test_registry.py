from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from registry import models, tracking  # noqa: E402


@pytest.fixture()
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_flatten_nested_config():
    flat = tracking.flatten({"model": {"preset": "tiny", "dims": [1, 2]}, "lr": 0.045})
    assert flat == {"model.preset": "tiny", "model.dims": "[1, 2]", "lr": "0.045"}


def test_resolve_uri_env_override(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////x/y.db")
    assert tracking.resolve_tracking_uri() == "sqlite:////x/y.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.resolve_tracking_uri().endswith("/mlflow.db")


def test_git_commit_and_manifest_hash(tmp_path: Path):
    commit = tracking.git_commit()
    assert commit == "no-git" or len(commit.split("-")[0]) == 40
    assert tracking.git_commit(tmp_path) == "no-git"
    m = tmp_path / "cuts.jsonl.gz"
    m.write_bytes(b"abc")
    digest = tracking.manifest_hashes([m, tmp_path / "missing.jsonl.gz"])
    assert digest == {
        "manifest.cuts.jsonl.gz": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    }


def test_evaluation_run_readback(store: str, tmp_path: Path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"cer": 0.1}))
    rid = tracking.log_evaluation(
        "eval-test",
        "dev",
        {"model": "m.pt", "opts": {"beam": 4}},
        {"cer": 0.1},
        [report],
        uri=store,
    )
    client = tracking.get_client(store)
    run = client.get_run(rid)
    assert run.data.params["opts.beam"] == "4"
    assert run.data.metrics["cer"] == pytest.approx(0.1)
    assert [a.path for a in client.list_artifacts(rid)] == ["report.json"]


def test_register_alias_signoff_promote(store: str, tmp_path: Path):
    ckpt = tmp_path / "averaged.pt"
    ckpt.write_bytes(b"weights")
    v1 = models.register_model("hotline-zipformer", ckpt, uri=store, tags={"recipe": "synth"})
    v2 = models.register_model("hotline-zipformer", ckpt, uri=store)
    assert (v1.version, v2.version) == ("1", "2")
    assert v1.tags["recipe"] == "synth"
    assert models.get_alias("hotline-zipformer", "production", uri=store) is None

    with pytest.raises(PermissionError):
        models.promote("hotline-zipformer", 2, uri=store)
    models.sign_off("hotline-zipformer", 2, "li.wei", "reject", "CER too high", uri=store)
    with pytest.raises(PermissionError):
        models.promote("hotline-zipformer", 2, uri=store)
    rec = models.sign_off("hotline-zipformer", 2, "li.wei", "approve", "dev CER ok", uri=store)
    models.promote("hotline-zipformer", 2, uri=store)
    models.set_alias("hotline-zipformer", "challenger", 1, uri=store)

    prod = models.get_alias("hotline-zipformer", "production", uri=store)
    chal = models.get_alias("hotline-zipformer", "challenger", uri=store)
    assert prod is not None and prod.version == "2" and "production" in prod.aliases
    assert chal is not None and chal.version == "1"
    got = models.get_sign_off("hotline-zipformer", 2, uri=store)
    assert got == rec and got.decision == "approve"
    client = tracking.get_client(store)
    arts = [a.path for a in client.list_artifacts(v2.run_id, "signoff")]
    assert arts == ["signoff/signoff-v2.json"]
    with pytest.raises(ValueError, match="alias"):
        models.set_alias("hotline-zipformer", "staging", 1, uri=store)
