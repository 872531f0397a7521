"""MLflow experiment tracking for training and evaluation runs.

The default store is local and git-ignored: ``sqlite:///<project>/mlflow.db`` for runs and the
model registry, ``<project>/mlartifacts`` for artifacts. ``MLFLOW_TRACKING_URI`` overrides it.
Every training run records the flattened config, the git commit, the sha256 of its cut manifests,
its metrics and its artifacts (config, tokens, checkpoints).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_PARAM_VALUE = 6000  # MLflow's limit on one param value (characters)


def default_tracking_uri(project_root: Path | str = PROJECT_ROOT) -> str:
    """``sqlite:///<project>/mlflow.db``: the local store used when nothing else is configured."""
    return f"sqlite:///{Path(project_root).resolve() / 'mlflow.db'}"


def default_artifact_root(project_root: Path | str = PROJECT_ROOT) -> str:
    return (Path(project_root).resolve() / "mlartifacts").as_uri()


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The explicit ``uri``, else ``$MLFLOW_TRACKING_URI``, else the local sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def artifact_root_for(uri: str) -> str | None:
    """Artifact location for new experiments: beside a sqlite file, ``None`` (server decides) else."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists become their string form."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            text = str(value)
            out[name] = (
                text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 3] + "..."
            )
    return out


def git_commit(repo: Path | str = PROJECT_ROOT) -> str:
    """The HEAD commit of ``repo`` (with ``-dirty`` when there are local changes), or ``no-git``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no-git"
    return f"{head}-dirty" if dirty else head


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_hashes(paths: Iterable[Path | str]) -> dict[str, str]:
    """``{"manifest.<file name>": sha256}`` for each existing manifest file."""
    out = {}
    for p in paths:
        p = Path(p)
        if p.is_file():
            out[f"manifest.{p.name}"] = file_sha256(p)
    return out


def get_client(uri: str | None = None):
    """An ``MlflowClient`` on the resolved store (imports mlflow lazily)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(uri))


def ensure_experiment(client, name: str, uri: str | None = None) -> str:
    """The id of experiment ``name``, created (with a local artifact root) when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = artifact_root_for(resolve_tracking_uri(uri))
    location = f"{location}/{name}" if location else None
    return client.create_experiment(name, artifact_location=location)


@dataclass
class RunContext:
    """What identifies a run's inputs: code version and data versions."""

    git_commit: str
    manifests: dict[str, str]


def log_params(client, run_id: str, params: Mapping[str, str]) -> None:
    """Log params in batches of 100 (MLflow's per-request limit)."""
    from mlflow.entities import Param

    items = [Param(k[:250], v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_run_context(
    client,
    run_id: str,
    config: Mapping[str, Any],
    manifests: Iterable[Path | str] = (),
    repo: Path | str = PROJECT_ROOT,
) -> RunContext:
    """Log the flattened config as params, the git commit and manifest hashes as tags."""
    log_params(client, run_id, flatten(config))
    ctx = RunContext(git_commit=git_commit(repo), manifests=manifest_hashes(manifests))
    client.set_tag(run_id, "git_commit", ctx.git_commit)
    for key, digest in ctx.manifests.items():
        client.set_tag(run_id, key, digest)
    return ctx


def log_artifacts(client, run_id: str, paths: Iterable[Path | str], subdir: str | None = None):
    """Upload the existing files among ``paths`` to the run's artifact store."""
    for p in paths:
        if p is not None and Path(p).is_file():
            client.log_artifact(run_id, str(p), artifact_path=subdir)


def lightning_logger(
    experiment: str, run_name: str | None = None, uri: str | None = None, run_id: str | None = None
):
    """A Lightning ``MLFlowLogger`` on the resolved store with a local artifact root;
    ``run_id`` continues an existing run (a resumed training)."""
    from lightning.pytorch.loggers import MLFlowLogger

    uri = resolve_tracking_uri(uri)
    location = artifact_root_for(uri)
    return MLFlowLogger(
        experiment_name=experiment,
        run_name=run_name,
        tracking_uri=uri,
        artifact_location=f"{location}/{experiment}" if location else None,
        run_id=run_id,
    )


def log_evaluation(
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: Iterable[Path | str] = (),
    uri: str | None = None,
) -> str:
    """One finished run for an evaluation: params, metrics, artifacts. Returns the run id."""
    client = get_client(uri)
    exp_id = ensure_experiment(client, experiment, uri)
    run = client.create_run(exp_id, run_name=run_name)
    rid = run.info.run_id
    log_params(client, rid, flatten(params))
    client.set_tag(rid, "git_commit", git_commit())
    for k, v in metrics.items():
        client.log_metric(rid, k, float(v))
    log_artifacts(client, rid, artifacts)
    client.set_terminated(rid, "FINISHED")
    return rid
