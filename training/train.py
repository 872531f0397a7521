"""Train a recipe: ``train("recipes/zipformer_synth", ["trainer.max_steps=100"])``.

Reads ``<recipe>/config.yaml`` (see :mod:`training.lightning.config`), trains with Lightning on
CPU (DDP over gloo when ``trainer.devices > 1``), checkpoints into ``<recipe>/exp/`` every N
steps and every M minutes (``step-*.ckpt``, ``last.ckpt``, ``time-last.ckpt``), resumes from
the newest readable checkpoint there (step count, optimizer, schedule, and the position inside
the current epoch), averages the last k into ``exp/averaged.pt`` and writes the last weights to
``exp/final.pt`` (both in our model file format, without optimizer state), and tracks everything
in MLflow (both model files are logged as artifacts; the Lightning checkpoints stay in exp/).

``init.checkpoint`` starts from our checkpoint, a Lightning ``.ckpt`` or an icefall checkpoint
(``{"model": state_dict}`` with ``hyper-params.json`` beside it). When the init vocabulary
differs from the recipe's tokens, rows of the vocabulary-sized tensors (decoder embedding, joiner
output, simple projections, CTC output) are copied by token *string*; tokens the init model does
not know keep their fresh initialisation. The init model's architecture wins over the recipe's
``model`` section (the weights must fit).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from training.lightning.config import RecipeConfig, load_recipe, to_dict

log = logging.getLogger("hotline_asr.train")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Parameters whose first dimension is the vocabulary (icefall AsrModel names).
VOCAB_PARAMS = (
    "decoder.embedding.weight",
    "joiner.output_linear.weight",
    "joiner.output_linear.bias",
    "simple_am_proj.weight",
    "simple_am_proj.bias",
    "simple_lm_proj.weight",
    "simple_lm_proj.bias",
    "ctc_output.1.weight",
    "ctc_output.1.bias",
)
_STEP_RE = re.compile(r"step-(\d+)\.ckpt$")


@dataclass
class TrainResult:
    exp_dir: Path
    global_step: int
    last_checkpoint: Path | None
    averaged: Path | None
    final: Path | None
    resumed_from: Path | None
    mlflow_run_id: str | None
    skipped_batches: int
    stopped_by: str | None = None  # "SIGTERM"/"SIGINT" when a signal ended the run early
    # True when the run reached trainer.max_epochs / max_steps (not cut off by time or signal)
    completed: bool = False
    wall_seconds: float = 0.0  # this invocation's time in trainer.fit (not earlier sessions)
    # training wall time of the whole run: this session and the resumed ones before it
    run_wall_seconds: float = 0.0


# ------------------------------------------------------------------ tokens and model
def load_tokens(cfg: RecipeConfig, root: Path) -> list[str]:
    """Token strings in id order, building ``tokens.file`` first when it is missing."""
    from serving.tokens import TokenTable

    path = _resolve(cfg.tokens.file, root)
    if not path.is_file():
        if not cfg.tokens.build_from:
            raise FileNotFoundError(
                f"tokens file {path} is missing and tokens.build_from is empty: give one of them"
            )
        from training.lightning.tokens import build_token_table

        build_token_table(
            [_resolve(p, root) for p in cfg.tokens.build_from], path, cfg.tokens.common_chars
        )
    return list(TokenTable.load(path).tokens)


def model_config(cfg: RecipeConfig, vocab_size: int):
    from training.model.config import preset

    overrides = dict(cfg.model.overrides)
    overrides.setdefault("chunk_size", tuple(cfg.model.chunk_size))
    overrides.setdefault("left_context_frames", tuple(cfg.model.left_context_frames))
    return preset(cfg.model.preset, vocab_size=vocab_size, **overrides)


@dataclass
class InitModel:
    config: Any  # ZipformerConfig
    state_dict: dict[str, torch.Tensor]
    tokens: list[str] | None


def read_init_checkpoint(path: Path | str, hyper_params: Path | str | None = None) -> InitModel:
    """Weights to start from: our model file, a Lightning ``.ckpt`` of ours, or an icefall
    checkpoint (hyper-parameters from ``hyper_params`` or ``hyper-params.json`` beside it;
    tokens from a ``tokens.txt`` beside it when present)."""
    from serving.tokens import TokenTable
    from training.model.checkpoint import FORMAT, load_model
    from training.model.config import ZipformerConfig

    path = Path(path)
    if not path.is_file():
        near = sorted(p.name for p in path.parent.glob("*.*") if p.suffix in (".pt", ".ckpt"))
        hint = f"; {path.parent} has: {', '.join(near)}" if near else ""
        raise FileNotFoundError(
            f"model checkpoint {path}: no such file (give our model .pt, a recipe's "
            f"exp/*.ckpt or an icefall checkpoint){hint}"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        model, config, tokens = load_model(path)
        return InitModel(config, model.state_dict(), tokens)
    if isinstance(ckpt, dict) and "hotline" in ckpt and "state_dict" in ckpt:  # Lightning
        meta = ckpt["hotline"]
        sd = {k[6:]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        return InitModel(ZipformerConfig.from_dict(meta["model_config"]), sd, meta["tokens"])
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):  # icefall
        hp = Path(hyper_params) if hyper_params else path.parent / "hyper-params.json"
        if not hp.is_file():
            raise FileNotFoundError(
                f"{path} looks like an icefall checkpoint but {hp} is missing: pass its "
                "hyper-params.json (train.py params) as init.hyper_params"
            )
        tokens_file = path.parent / "tokens.txt"
        tokens = TokenTable.load(tokens_file).tokens if tokens_file.is_file() else None
        return InitModel(ZipformerConfig.from_json(hp), dict(ckpt["model"]), tokens)
    raise ValueError(
        f"{path} is neither our model file, our Lightning checkpoint nor an icefall checkpoint"
    )


def map_vocabulary(
    init_sd: dict[str, torch.Tensor],
    init_tokens: list[str] | None,
    new_sd: dict[str, torch.Tensor],
    new_tokens: list[str],
) -> tuple[dict[str, torch.Tensor], int]:
    """``init_sd`` with vocabulary rows re-ordered to ``new_tokens`` (rows for unknown tokens
    taken from ``new_sd``). Returns (state dict, number of tokens copied)."""
    if init_tokens is None or list(init_tokens) == list(new_tokens):
        return init_sd, len(new_tokens)
    old_index = {t: i for i, t in enumerate(init_tokens)}
    pairs = [(j, old_index[t]) for j, t in enumerate(new_tokens) if t in old_index]
    new_ids = torch.tensor([j for j, _ in pairs], dtype=torch.int64)
    old_ids = torch.tensor([i for _, i in pairs], dtype=torch.int64)
    out = dict(init_sd)
    for name in VOCAB_PARAMS:
        if name not in init_sd or name not in new_sd:
            continue
        fresh = new_sd[name].detach().clone()
        fresh[new_ids] = init_sd[name][old_ids].to(fresh.dtype)
        out[name] = fresh
    return out, len(pairs)


def freeze_encoder_stacks(model: torch.nn.Module, n: int) -> int:
    """Freeze the front end and the first ``n`` encoder stacks; returns frozen parameter count."""
    if n <= 0:
        return 0
    stacks = len(model.encoder.encoders)
    if n > stacks:
        raise ValueError(f"freeze_encoder_stacks={n} but the encoder has {stacks} stacks")
    frozen = 0
    modules = [model.encoder_embed] + [model.encoder.encoders[i] for i in range(n)]
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def build_model(cfg: RecipeConfig, tokens: list[str], root: Path, arch=None):
    """The Transducer and its config, initialised from ``init.checkpoint`` when given.
    ``arch`` (a ZipformerConfig, e.g. a resumed run's) fixes the architecture instead; the
    weights are then left to the caller."""
    from training.model.transducer import Transducer

    init = None
    if arch is None and cfg.init.checkpoint:
        init = read_init_checkpoint(
            _resolve(cfg.init.checkpoint, root),
            _resolve(cfg.init.hyper_params, root) if cfg.init.hyper_params else None,
        )
        arch = init.config
        arch.vocab_size = len(tokens)
    if arch is not None:
        mc = arch
        # the chunk and left-context lists are training choices, not architecture: a resumed
        # run or a fine-tune trains with the recipe's (and its --set overrides')
        mc.chunk_size = tuple(cfg.model.chunk_size)
        mc.left_context_frames = tuple(cfg.model.left_context_frames)
    else:
        mc = model_config(cfg, len(tokens))
    model = Transducer(mc)
    if init is not None:
        _load_init_weights(model, init, tokens, cfg)
    freeze_encoder_stacks(model, cfg.init.freeze_encoder_stacks)
    return model, mc


def _load_init_weights(model, init: InitModel, tokens: list[str], cfg: RecipeConfig) -> None:
    """Copy ``init``'s weights into ``model`` (rows mapped by token), then apply
    ``init.joiner_from_ctc``; a checkpoint that does not fit is an error."""
    sd, copied = map_vocabulary(init.state_dict, init.tokens, model.state_dict(), tokens)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    log.info(
        "init from %s: %d/%d tokens mapped, missing=%s unexpected=%s",
        cfg.init.checkpoint,
        copied,
        len(tokens),
        missing,
        unexpected,
    )
    if unexpected or [k for k in missing if not k.startswith("ctc_output")]:
        raise ValueError(
            f"{cfg.init.checkpoint} does not fit the model: missing {missing}, "
            f"unexpected {unexpected}"
        )
    if cfg.init.joiner_from_ctc is None:
        return
    if any(k.startswith("ctc_output") for k in missing):
        raise ValueError(
            f"init.joiner_from_ctc needs a CTC head in {cfg.init.checkpoint}, which has "
            "none; drop init.joiner_from_ctc or start from a model trained with use_ctc"
        )
    from training.model.ctc_joiner import joiner_from_ctc

    joiner_from_ctc(model, cfg.init.joiner_from_ctc)
    log.info("joiner rewritten from the CTC head (scale %s)", cfg.init.joiner_from_ctc)


# ------------------------------------------------------------------------ checkpoints
def checkpoint_step(path: Path) -> int:
    m = _STEP_RE.search(path.name)
    return int(m.group(1)) if m else -1


def find_resume_checkpoint(exp_dir: Path) -> Path | None:
    """The readable checkpoint with the highest global step (``last.ckpt`` or ``step-*.ckpt``);
    a file cut off mid-write is skipped."""
    best: tuple[int, Path] | None = None
    for p in [exp_dir / "last.ckpt", *exp_dir.glob("step-*.ckpt"), *exp_dir.glob("time-*.ckpt")]:
        if not p.is_file():
            continue
        try:
            ck = torch.load(p, map_location="cpu", weights_only=False, mmap=True)
            step = int(ck["global_step"])
        except Exception as e:  # truncated / corrupt file: fall back to an older one
            log.warning("cannot read %s (%s); ignoring it", p, e)
            continue
        if best is None or step > best[0]:
            best = (step, p)
    return best[1] if best else None


def select_checkpoints(
    exp_dir: Path, last: int | None = None, steps: list[int] | None = None
) -> list[Path]:
    """The ``step-*.ckpt`` files of a run to average: the ``last`` N by step (as ``train`` picks
    them for ``checkpoint.average_last``) or exactly those at ``steps``."""
    if (last is None) == (steps is None):
        raise ValueError("give either the number of last checkpoints or a list of steps")
    found = sorted(exp_dir.glob("step-*.ckpt"), key=checkpoint_step)
    if not found:
        raise ValueError(
            f"{exp_dir} holds no step-*.ckpt files; give a training run's folder "
            "(a recipe's exp/ or exp/<stage>/)"
        )
    have = [checkpoint_step(p) for p in found]
    if last is not None:
        if not 0 < last <= len(found):
            raise ValueError(
                f"cannot average the last {last} of {len(found)} checkpoints in {exp_dir} "
                f"(steps {have}); give 1 to {len(found)}"
            )
        return found[-last:]
    by_step = dict(zip(have, found, strict=True))
    missing = [s for s in steps or [] if s not in by_step]
    if missing or not steps:
        raise ValueError(
            f"no checkpoint for step(s) {missing or steps} in {exp_dir}; it has steps {have}"
        )
    return [by_step[s] for s in dict.fromkeys(steps)]


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Average the ``model.*`` weights of our Lightning checkpoints into our model file format
    (``training.model.checkpoint.save_model``); auxiliary heads are left out."""
    from training.model.checkpoint import save_model
    from training.model.config import ZipformerConfig
    from training.model.transducer import Transducer

    if not paths:
        raise ValueError("no checkpoints to average")
    avg: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for p in paths:
        ck = torch.load(p, map_location="cpu", weights_only=False)
        meta = ck["hotline"]
        for k, v in ck["state_dict"].items():
            if not k.startswith("model."):
                continue
            k = k[len("model.") :]
            if v.is_floating_point():
                avg[k] = avg[k] + v.double() if k in avg else v.double()
            else:
                avg[k] = v
    model = Transducer(ZipformerConfig.from_dict(meta["model_config"]))
    model.load_state_dict(
        {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in avg.items()}
    )
    save_model(out, model, meta["tokens"], extra={"averaged": [p.name for p in paths]})
    return out


def _resolve(p: str | Path, root: Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else root / p


# ------------------------------------------------------------------------------ train
def train(
    recipe_dir: Path | str,
    overrides: list[str] | None = None,
    root: Path | str | None = None,
    exp_dir: Path | str | None = None,
    extra_callbacks: list | None = None,
    run_name: str | None = None,
) -> TrainResult:
    """Train the recipe in ``recipe_dir``; relative data paths resolve against ``root``
    (the project root by default). Safe to call again after an interruption: it resumes.

    This trains one configuration; a recipe with ``stages`` goes through
    :func:`training.stages.train_recipe`, which calls this once per stage."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import DDPStrategy

    from training.lightning.datamodule import TransducerDataModule
    from training.lightning.module import TransducerModule
    from training.lightning.pinyin import PinyinTargets

    _quiet_known_warnings()
    recipe_dir = Path(recipe_dir)
    root = Path(root) if root else PROJECT_ROOT
    cfg = load_recipe(recipe_dir, overrides)
    if cfg.stages:
        raise ValueError(
            f"{recipe_dir} has stages {[st.get('name') for st in cfg.stages]}: train it with "
            "training.stages.train_recipe (what `hotline-asr train` calls)"
        )
    missing = [
        p for p in cfg.data.train_cuts + cfg.data.dev_cuts if not _resolve(p, root).is_file()
    ]
    if missing or not cfg.data.train_cuts:
        raise FileNotFoundError(
            f"cut manifest(s) missing: {missing or 'data.train_cuts is empty'}; run "
            "`hotline-asr data import` and `hotline-asr data fbank` first, or fix data.* paths"
        )
    exp = Path(exp_dir) if exp_dir else recipe_dir / "exp"
    exp.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    pl.seed_everything(cfg.trainer.seed, workers=True, verbose=False)

    tokens = load_tokens(cfg, root)
    resume = find_resume_checkpoint(exp)
    if resume is not None and cfg.init.checkpoint:
        log.info("resuming from %s; init.checkpoint is ignored (already applied)", resume)
        cfg.init.checkpoint = None
    # A resumed run keeps its own architecture (in a fine-tune it came from init.checkpoint
    # and may differ from the recipe's preset); its weights follow from the checkpoint.
    arch = read_init_checkpoint(resume).config if resume is not None else None
    model, mc = build_model(cfg, tokens, root, arch)
    from training.model.size import count_parameters

    size = count_parameters(model)
    log.info(
        "model: %s parameters (%s served: encoder %s, decoder %s, joiner %s; %s trainable)",
        f"{size.total:,}",
        f"{size.served:,}",
        f"{size.encoder:,}",
        f"{size.decoder:,}",
        f"{size.joiner:,}",
        f"{size.trainable:,}",
    )
    from serving.tokens import TokenTable

    table = TokenTable.load(_resolve(cfg.tokens.file, root))
    pinyin = PinyinTargets() if cfg.loss.pinyin_ctc_scale > 0 else None
    module = TransducerModule(
        model,
        mc.to_dict(),
        tokens,
        loss=cfg.loss,
        optim=cfg.optim,
        valid=cfg.valid,
        batch_duration=cfg.data.max_duration,
        pinyin_vocab_size=pinyin.vocab_size if pinyin else 0,
    )
    data = TransducerDataModule(
        cfg.data,
        cfg.augment,
        text_to_ids=table.encode,
        pinyin_to_ids=pinyin.encode if pinyin else None,
        root=root,
    )
    (exp / "config.yaml").write_text(_dump_yaml(to_dict(cfg)))

    ckpt_steps = ModelCheckpoint(
        dirpath=exp,
        filename="step-{step:08.0f}",
        auto_insert_metric_name=False,
        every_n_train_steps=cfg.checkpoint.every_n_steps,
        save_top_k=max(cfg.checkpoint.keep_last, cfg.checkpoint.average_last, 1),
        monitor="step",
        mode="max",
        save_last=True,
        save_on_train_epoch_end=True,
    )
    from training.lightning.callbacks import GracefulStop

    stop = GracefulStop()
    callbacks: list = [ckpt_steps, stop]
    if cfg.checkpoint.every_minutes:
        from training.lightning.callbacks import TimedCheckpoint

        callbacks.append(TimedCheckpoint(exp, cfg.checkpoint.every_minutes))
    if cfg.trainer.max_time_minutes:
        from training.lightning.callbacks import SessionTimer

        callbacks.append(
            SessionTimer(timedelta(minutes=cfg.trainer.max_time_minutes), interval="step")
        )
    progress_bar = _progress_bar(cfg.trainer.progress_bar)
    if not progress_bar and cfg.trainer.progress_log_every_n_steps > 0:
        from training.lightning.callbacks import ProgressLog

        callbacks.append(ProgressLog(cfg.trainer.progress_log_every_n_steps))
    callbacks += extra_callbacks or []
    from training.lightning.callbacks import CheckpointOnStop

    on_stop = CheckpointOnStop(exp / "last.ckpt")
    callbacks.append(on_stop)  # last: after everything that may ask the run to stop

    logger = False
    run_id = None
    if cfg.mlflow.enabled:
        from registry.tracking import lightning_logger
        from training.lightning.callbacks import MlflowRunContext

        run_file = exp / "mlflow_run_id.txt"
        previous = run_file.read_text().strip() if run_file.is_file() and resume else None
        logger = lightning_logger(
            cfg.mlflow.experiment or cfg.name,
            run_name or cfg.name,
            cfg.mlflow.uri,
            run_id=previous,
        )
        manifests = [_resolve(p, root) for p in cfg.data.train_cuts + cfg.data.dev_cuts]
        params = {**to_dict(cfg), "num_params": size.to_dict()}
        callbacks.append(MlflowRunContext(params, manifests, run_file))

    devices = cfg.trainer.devices
    strategy: Any = "auto"
    if devices > 1:
        strategy = DDPStrategy(process_group_backend="gloo", find_unused_parameters=True)
    val_kw: dict[str, Any] = {"check_val_every_n_epoch": 1}
    if cfg.trainer.val_every_n_steps:
        val_kw = {"val_check_interval": cfg.trainer.val_every_n_steps}
    has_dev = bool(cfg.data.dev_cuts)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        precision=cfg.trainer.precision,
        max_epochs=cfg.trainer.max_epochs,
        max_steps=cfg.trainer.max_steps,
        logger=logger,
        callbacks=callbacks,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        use_distributed_sampler=False,
        reload_dataloaders_every_n_epochs=1,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if has_dev else 0,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        default_root_dir=exp,
        **val_kw,
    )
    started = time.monotonic()
    trainer.fit(module, datamodule=data.as_lightning(), ckpt_path=str(resume) if resume else None)
    wall = time.monotonic() - started
    run_wall = module.wall_seconds()
    max_steps = cfg.trainer.max_steps
    completed = stop.received is None and (
        (max_steps > 0 and trainer.global_step >= max_steps)
        or trainer.current_epoch >= cfg.trainer.max_epochs
    )

    last = exp / "last.ckpt"
    if on_stop.saved_at is None:
        # (a run stopped early already saved last.ckpt inside its epoch, see CheckpointOnStop)
        batches = trainer.fit_loop.epoch_loop.batch_progress
        if batches.is_last_batch:
            # The epoch ran to its end: clear its batch counters so a resume starts the next
            # epoch afresh (e.g. after raising max_epochs). Left set, Lightning resumes into
            # an epoch it takes as finished and trains none of its batches.
            batches.reset_on_run()
        trainer.save_checkpoint(last)
    averaged = final = None
    if trainer.is_global_zero:
        steps = sorted(exp.glob("step-*.ckpt"), key=checkpoint_step)
        pick = steps[-cfg.checkpoint.average_last :] if cfg.checkpoint.average_last > 0 else []
        averaged = average_checkpoints(pick or [last], exp / "averaged.pt")
        final = average_checkpoints([last], exp / "final.pt")  # last weights, our format
        if cfg.mlflow.enabled and logger and logger.run_id:
            run_id = logger.run_id
            from registry.tracking import log_artifacts

            log_artifacts(
                logger.experiment,
                run_id,
                [exp / "config.yaml", _resolve(cfg.tokens.file, root)],
                "config",
            )
            log_artifacts(logger.experiment, run_id, [averaged, final], "checkpoints")
            logger.experiment.log_metric(
                run_id, "train/wall_minutes", run_wall / 60.0, step=trainer.global_step
            )
    return TrainResult(
        exp_dir=exp,
        global_step=trainer.global_step,
        last_checkpoint=last if last.is_file() else None,
        averaged=averaged,
        final=final,
        resumed_from=resume,
        mlflow_run_id=run_id,
        skipped_batches=module.skipped_batches,
        stopped_by=stop.received,
        completed=completed,
        wall_seconds=wall,
        run_wall_seconds=run_wall,
    )


def _progress_bar(setting: bool | None) -> bool:
    """``trainer.progress_bar`` when set, else HOTLINE_PROGRESS=1/0, else whether stderr is a
    terminal (a bar in a log file is noise)."""
    if setting is not None:
        return setting
    env = os.environ.get("HOTLINE_PROGRESS")
    if env is not None:
        return env == "1"
    import sys

    return sys.stderr.isatty()


def _quiet_known_warnings() -> None:
    """Silence warnings that are expected with this setup (and would hide real ones)."""
    import warnings

    # Checkpoints hold the weights after the step they are named for: intended.
    warnings.filterwarnings("ignore", message=".*manual optimization and every_n_train_steps.*")
    # Cuts are read eagerly on purpose (mixing, curriculum sort); they are small on disk.
    warnings.filterwarnings("ignore", message=".*DynamicBucketingSampler with an eagerly read.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")


def _dump_yaml(d: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(d, default=list)), sort_keys=False)
