"""Recipes in stages: one ``hotline-asr train --recipe R`` runs all of a recipe's stages in order.

A recipe's ``config.yaml`` may list stages; each is the config as written plus its own ``set``
overrides::

    stages:
      - name: adapt                  # the config as written
      - name: chunk16
        resume_from: adapt           # carry on adapt's run: weights, optimizer, schedule, step
        set: {trainer.max_epochs: 38, model.chunk_size: [16]}
      - name: joiner
        init_from: chunk16           # start from chunk16's averaged.pt, fresh optimizer/schedule
        set: {init.joiner_from_ctc: 0.2, optim.base_lr: 0.01}

- ``init_from: S`` starts from stage S's ``averaged.pt`` as ``init.checkpoint`` does: new
  optimizer, new learning-rate schedule, step 0.
- ``resume_from: S`` continues stage S's last checkpoint (step, epoch, optimizer, schedule), so
  its ``trainer.max_epochs`` / ``max_steps`` count from the start of S's run and must be larger.
- ``rewrite_joiner_from_ctc: 0.2`` rewrites the joiner of the stage's ``averaged.pt`` from its
  CTC head once the stage has trained (as ``hotline-asr joiner-from-ctc`` does), for models whose
  trained joiner decodes worse than their head; the trained average stays as
  ``averaged-trained.pt``.

Each stage trains in ``<exp>/<name>/`` as its own MLflow run (run name ``<recipe>/<name>``). A stage
that reaches its ``max_epochs`` / ``max_steps`` writes ``done.json`` there and is skipped when the
command runs again, so an interrupted recipe picks up inside the stage it stopped in.
``trainer.max_time_minutes`` (``--max-time``) is the budget of the whole command. When the last
stage is done, its ``averaged.pt`` is copied to ``<exp>/averaged.pt``: the recipe's model.
Overrides given on the command line apply to every stage and win over the stage's ``set``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.lightning.config import load_recipe

log = logging.getLogger("hotline_asr.train")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DONE_FILE = "done.json"


@dataclass
class Stage:
    name: str
    init_from: str | None = None
    resume_from: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    rewrite_joiner_from_ctc: float | None = None


@dataclass
class StageResult:
    name: str
    exp_dir: Path
    skipped: bool  # done before this invocation: not trained again
    result: Any = None  # training.train.TrainResult when it trained now


@dataclass
class RecipeResult:
    exp_dir: Path
    stages: list[StageResult]
    averaged: Path | None  # <exp>/averaged.pt once every stage is done
    stopped: str | None = None  # why it stopped before the last stage, if it did
    # another process of a DDP run: it trained each stage alongside the main process, which
    # wrote the checkpoints, averages and done.json files
    worker: bool = False


def parse_stages(raw: list[Any], where: str = "stages") -> list[Stage]:
    """Check a recipe's ``stages`` list and turn it into :class:`Stage` objects."""
    if not isinstance(raw, list):
        raise ValueError(f"{where} must be a list of mappings, got {raw!r}")
    stages: list[Stage] = []
    known = set(Stage.__dataclass_fields__)
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at} must be a mapping with a name, got {item!r}")
        unknown = set(item) - known
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} in {at}; known: {sorted(known)}")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"{at}.name must be a folder-safe name (letters, digits, _ . -), got {name!r}"
            )
        if any(s.name == name for s in stages):
            raise ValueError(f"{at}: stage name {name!r} is used twice")
        init_from, resume_from = item.get("init_from"), item.get("resume_from")
        if init_from and resume_from:
            raise ValueError(f"{at} ({name}): give init_from or resume_from, not both")
        earlier = [s.name for s in stages]
        for key, ref in (("init_from", init_from), ("resume_from", resume_from)):
            if ref is not None and ref not in earlier:
                raise ValueError(
                    f"{at} ({name}): {key} {ref!r} is not an earlier stage; earlier: {earlier}"
                )
        sets = item.get("set") or {}
        if not isinstance(sets, dict):
            raise ValueError(f"{at} ({name}).set must map dotted keys to values, got {sets!r}")
        if any(str(k).split(".")[0] == "stages" for k in sets):
            raise ValueError(f"{at} ({name}).set cannot change the stages themselves")
        rewrite = item.get("rewrite_joiner_from_ctc")
        if rewrite is not None and (
            isinstance(rewrite, bool) or not isinstance(rewrite, int | float) or rewrite <= 0
        ):
            raise ValueError(
                f"{at} ({name}).rewrite_joiner_from_ctc is the encoder scale of the rewritten "
                f"joiner, a positive number such as 0.2; got {rewrite!r}"
            )
        stages.append(Stage(name, init_from, resume_from, dict(sets), rewrite))
    return stages


def _as_overrides(values: dict[str, Any]) -> list[str]:
    # JSON is YAML: load_recipe parses each value back to what the stage wrote
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def stage_overrides(
    stage: Stage, exp: Path, overrides: list[str], minutes_left: float | None
) -> list[str]:
    """The overrides that make ``stage``'s config: its ``set``, then the command line's, then
    where it starts from and the time left."""
    out = _as_overrides(stage.set) + list(overrides) + ["stages=[]"]
    if stage.init_from:
        out.append(f"init.checkpoint={exp / stage.init_from / 'averaged.pt'}")
    if minutes_left is not None:
        out.append(f"trainer.max_time_minutes={minutes_left}")
    return out


def check_stages(recipe_dir: Path, stages: list[Stage], exp: Path, overrides: list[str]) -> None:
    """Build every stage's config before anything trains: a typo in the last stage must not
    surface after hours of the first."""
    cfgs = {}
    for st in stages:
        try:
            cfgs[st.name] = load_recipe(recipe_dir, stage_overrides(st, exp, overrides, None))
        except ValueError as e:
            raise ValueError(f"stage {st.name!r} of {recipe_dir}: {e}") from e
        if st.resume_from:
            prev, cur = cfgs[st.resume_from].trainer, cfgs[st.name].trainer
            longer = (cur.max_steps > 0 and cur.max_steps > max(prev.max_steps, 0)) or (
                cur.max_steps <= 0 and cur.max_epochs > prev.max_epochs
            )
            if not longer:
                raise ValueError(
                    f"stage {st.name!r} resumes {st.resume_from!r}, whose step and epoch counts "
                    f"carry on: its trainer.max_epochs ({cur.max_epochs}) or max_steps "
                    f"({cur.max_steps}) must exceed {st.resume_from!r}'s ({prev.max_epochs}, "
                    f"{prev.max_steps})"
                )


def _group():
    """``torch.distributed`` while a DDP run's process group is up, else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _is_worker() -> bool:
    """True in the processes other than the main one of a DDP run. Lightning starts them with
    ``LOCAL_RANK`` set; they run the same command and walk the same stages."""
    dist = _group()
    if dist is not None:
        return dist.get_rank() != 0
    return int(os.environ.get("LOCAL_RANK", "0")) != 0


def _barrier() -> None:
    """Wait for every process of a DDP run (a no-op in a single process): the workers must not
    read a stage's files before the main process has written them."""
    dist = _group()
    if dist is not None:
        dist.barrier()


def _from_main(value: Any) -> Any:
    """The main process's ``value`` in every process of a DDP run (``value`` itself in one)."""
    dist = _group()
    if dist is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _start_from_stage(stage: Stage, exp: Path, here: Path) -> None:
    """For ``resume_from``: seed the stage folder with the earlier stage's last checkpoint (only
    when the stage has none of its own yet, i.e. on its first start)."""
    from training.train import find_resume_checkpoint

    if _is_worker() or not stage.resume_from or find_resume_checkpoint(here) is not None:
        return
    src = exp / stage.resume_from / "last.ckpt"
    if not src.is_file():
        raise FileNotFoundError(
            f"stage {stage.name!r} resumes {stage.resume_from!r} but {src} is missing; "
            f"delete {exp / stage.resume_from} and run the recipe again"
        )
    shutil.copyfile(src, here / "last.ckpt")


def _rewrite_joiner(averaged: Path, scale: float) -> None:
    """Replace ``averaged`` by its joiner-from-CTC rewrite, keeping the trained average beside
    it. Safe to repeat: a finished stage run again re-averages its checkpoints first."""
    from training.model.ctc_joiner import rewrite_model_file

    trained = averaged.with_name("averaged-trained.pt")
    shutil.copyfile(averaged, trained)
    rewrite_model_file(trained, averaged, scale)
    log.info("joiner of %s rewritten from its CTC head (scale %s)", averaged, scale)


def _why_stopped(result) -> str | None:
    if result.completed:
        return None
    if result.stopped_by:
        return f"stopped by {result.stopped_by}"
    return "stopped before its max_epochs / max_steps (time limit)"


def train_recipe(
    recipe_dir: Path | str,
    overrides: list[str] | None = None,
    root: Path | str | None = None,
    exp_dir: Path | str | None = None,
    extra_callbacks: list | None = None,
) -> RecipeResult:
    """Train ``recipe_dir``: its stages in order when it has any, else its one configuration
    (then ``exp_dir`` holds the run itself, as :func:`training.train.train` does)."""
    from training.train import train

    recipe_dir = Path(recipe_dir)
    overrides = list(overrides or [])
    cfg = load_recipe(recipe_dir, overrides)
    exp = Path(exp_dir) if exp_dir else recipe_dir / "exp"
    if not cfg.stages:
        result = train(recipe_dir, overrides, root, exp, extra_callbacks)
        one = StageResult(cfg.name, exp, False, result)
        return RecipeResult(exp, [one], result.averaged, _why_stopped(result), worker=_is_worker())
    stages = parse_stages(cfg.stages)
    check_stages(recipe_dir, stages, exp, overrides)
    budget = cfg.trainer.max_time_minutes
    started = time.monotonic()
    done: list[StageResult] = []
    for st in stages:
        here = exp / st.name
        if (here / DONE_FILE).is_file():
            log.info(
                "stage %s: done earlier (%s); delete that folder to train it again",
                st.name,
                here / DONE_FILE,
            )
            done.append(StageResult(st.name, here, True))
            continue
        left = None
        if budget is not None:
            # the main process's clock decides for all: a worker started later
            left = _from_main(budget - (time.monotonic() - started) / 60.0)
            if left <= 0.05:
                why = f"--max-time spent before stage {st.name}"
                return RecipeResult(exp, done, None, why, worker=_is_worker())
        here.mkdir(parents=True, exist_ok=True)
        _start_from_stage(st, exp, here)
        _barrier()
        log.info("stage %s: training in %s", st.name, here)
        result = train(
            recipe_dir,
            stage_overrides(st, exp, overrides, left),
            root,
            here,
            extra_callbacks,
            run_name=f"{cfg.name}/{st.name}",
        )
        done.append(StageResult(st.name, here, False, result))
        worker = _is_worker()
        if result.completed and not worker:
            _finish_stage(st, here, result)
        _barrier()  # the workers go on once the main process has written the stage's files
        if not result.completed:
            why = f"stage {st.name}: {_why_stopped(result)}"
            return RecipeResult(exp, done, None, why, worker=worker)
    if _is_worker():
        return RecipeResult(exp, done, None, worker=True)
    product = exp / "averaged.pt"
    shutil.copyfile(exp / stages[-1].name / "averaged.pt", product)
    return RecipeResult(exp, done, product)


def _finish_stage(st: Stage, here: Path, result) -> None:
    """After a stage reached its end: the joiner rewrite if it asks for one, then done.json."""
    if st.rewrite_joiner_from_ctc is not None:
        _rewrite_joiner(result.averaged, st.rewrite_joiner_from_ctc)
    (here / DONE_FILE).write_text(
        json.dumps(
            {
                "stage": st.name,
                "global_step": result.global_step,
                "averaged": str(result.averaged),
                "mlflow_run_id": result.mlflow_run_id,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            indent=1,
        )
        + "\n"
    )
