"""Model registry: versions, the ``production`` / ``challenger`` aliases, and sign-offs.

Built on MLflow's model registry (same store as :mod:`registry.tracking`). A version points at a
checkpoint or exported folder logged as run artifacts; a sign-off (who, when, decision, comment)
is kept as version tags and as a JSON artifact on the version's run, so it is auditable.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from registry.tracking import ensure_experiment, get_client

ALIASES = ("production", "challenger")
DECISIONS = ("approve", "reject")


@dataclass
class ModelVersion:
    name: str
    version: str
    run_id: str
    source: str
    aliases: list[str]
    tags: dict[str, str]


@dataclass
class SignOff:
    who: str
    decision: str
    comment: str
    when: str  # ISO-8601 UTC


def _as_version(mv) -> ModelVersion:
    return ModelVersion(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id or "",
        source=mv.source,
        aliases=list(getattr(mv, "aliases", []) or []),
        tags=dict(mv.tags or {}),
    )


def register_model(
    name: str,
    model_path: Path | str,
    run_id: str | None = None,
    description: str = "",
    tags: dict[str, str] | None = None,
    experiment: str = "model-registry",
    uri: str | None = None,
) -> ModelVersion:
    """Upload ``model_path`` (file or folder) as artifacts of ``run_id`` (a new run in
    ``experiment`` when None) under ``model/`` and register it as a new version of ``name``."""
    path = Path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist: pass a checkpoint or export folder")
    client = get_client(uri)
    own_run = run_id is None
    if own_run:
        run_id = client.create_run(ensure_experiment(client, experiment, uri)).info.run_id
    if path.is_dir():
        client.log_artifacts(run_id, str(path), artifact_path="model")
    else:
        client.log_artifact(run_id, str(path), artifact_path="model")
    if own_run:
        client.set_terminated(run_id, "FINISHED")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    try:
        client.get_registered_model(name)
    except Exception:  # mlflow raises RestException / MlflowException when missing
        client.create_registered_model(name)
    mv = client.create_model_version(
        name, source, run_id=run_id, tags=tags or {}, description=description
    )
    return _as_version(client.get_model_version(name, mv.version))


def set_alias(name: str, alias: str, version: str | int, uri: str | None = None) -> None:
    """Point ``alias`` (``production`` or ``challenger``) at ``version``."""
    if alias not in ALIASES:
        raise ValueError(f"alias {alias!r} is not one of {ALIASES}")
    get_client(uri).set_registered_model_alias(name, alias, str(version))


def get_alias(name: str, alias: str, uri: str | None = None) -> ModelVersion | None:
    """The version ``alias`` points at, or None when the alias is unset."""
    client = get_client(uri)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except Exception:
        return None
    return _as_version(mv)


def list_versions(name: str, uri: str | None = None) -> list[ModelVersion]:
    client = get_client(uri)
    found = client.search_model_versions(f"name='{name}'")
    return sorted((_as_version(mv) for mv in found), key=lambda v: int(v.version))


def sign_off(
    name: str,
    version: str | int,
    who: str,
    decision: str,
    comment: str = "",
    uri: str | None = None,
) -> SignOff:
    """Record a reviewer's decision on a version (tags ``signoff.*`` + ``signoff.json`` artifact)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision {decision!r} is not one of {DECISIONS}")
    if not who.strip():
        raise ValueError("sign-off needs the reviewer's name in `who`")
    client = get_client(uri)
    record = SignOff(
        who=who, decision=decision, comment=comment, when=datetime.now(UTC).isoformat()
    )
    version = str(version)
    for key, value in asdict(record).items():
        client.set_model_version_tag(name, version, f"signoff.{key}", value)
    mv = client.get_model_version(name, version)
    if mv.run_id:
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / f"signoff-v{version}.json"
            f.write_text(json.dumps(asdict(record), ensure_ascii=False, indent=2))
            client.log_artifact(mv.run_id, str(f), artifact_path="signoff")
    return record


def get_sign_off(name: str, version: str | int, uri: str | None = None) -> SignOff | None:
    tags = get_client(uri).get_model_version(name, str(version)).tags or {}
    if "signoff.who" not in tags:
        return None
    return SignOff(
        who=tags["signoff.who"],
        decision=tags["signoff.decision"],
        comment=tags.get("signoff.comment", ""),
        when=tags["signoff.when"],
    )


def promote(name: str, version: str | int, uri: str | None = None) -> None:
    """Make ``version`` the ``production`` model; refuses without an approving sign-off."""
    record = get_sign_off(name, version, uri)
    if record is None or record.decision != "approve":
        raise PermissionError(
            f"{name} v{version} has no approving sign-off: call sign_off(..., decision='approve')"
        )
    set_alias(name, "production", version, uri)
