"""A training run that dies mid-way resumes from its last checkpoint: the step count continues
and the optimizer (ScaledAdam) and schedule (Eden) state are the saved ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

torch.set_num_threads(1)


class Crash(Callback):
    """Kills the run (an exception out of the training loop) after ``at`` optimizer steps."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.at:
            raise RuntimeError("simulated crash")


class AtStart(Callback):
    """Records what the resumed run starts from."""

    def __init__(self) -> None:
        self.seen: dict = {}

    def on_train_start(self, trainer, pl_module) -> None:
        opt = trainer.optimizers[0]
        self.seen = {
            "step": trainer.global_step,
            "optimizer": _clone(opt.state_dict()),
            "eden": dict(pl_module.scheduler.state_dict()),
            "weights": {k: v.clone() for k, v in pl_module.model.state_dict().items()},
            "chunk_size": tuple(pl_module.model.encoder.chunk_size),
            "left_context": tuple(pl_module.model.encoder.left_context_frames),
        }


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(v) for v in obj)
    return obj


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def corpus(neural_voice: Path, tmp_path_factory):
    from training.lightning.smoke import make_smoke_corpus

    return make_smoke_corpus(
        neural_voice / "train", neural_voice / "dev", tmp_path_factory.mktemp("smoke"), 6, 3
    )


def test_interrupted_run_resumes_step_and_optimizer_state(corpus, tmp_path: Path):
    from training.lightning.smoke import write_smoke_recipe
    from training.train import train

    recipe = write_smoke_recipe(
        tmp_path / "recipe", corpus, {"data": {"dev_cuts": [], "max_duration": 8}}
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(recipe, ["trainer.max_steps=20"], extra_callbacks=[Crash(at=5)])
    exp = recipe / "exp"
    assert sorted(p.name for p in exp.glob("step-*.ckpt")) == [
        "step-00000002.ckpt",
        "step-00000004.ckpt",
    ]
    saved = torch.load(exp / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 4

    # The resumed part trains with changed streaming choices: they are not architecture.
    probe = AtStart()
    result = train(
        recipe,
        ["trainer.max_steps=7", "model.chunk_size=[32,-1]", "model.left_context_frames=[128]"],
        extra_callbacks=[probe],
    )
    assert result.resumed_from is not None
    assert probe.seen["step"] == 4
    assert probe.seen["chunk_size"] == (32, -1) and probe.seen["left_context"] == (128,)
    assert _same(probe.seen["optimizer"], saved["optimizer_states"][0])
    assert probe.seen["optimizer"]["state"], "ScaledAdam state must not be empty after resume"
    assert probe.seen["eden"] == saved["eden"] and saved["eden"]["batch"] >= 4
    sd = {k[6:]: v for k, v in saved["state_dict"].items() if k.startswith("model.")}
    assert _same(probe.seen["weights"], sd)
    assert result.global_step == 7
    final = torch.load(exp / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == 7
    assert final["hotline"]["model_config"]["chunk_size"] == [32, -1]
    assert not _same(
        {k[6:]: v for k, v in final["state_dict"].items() if k.startswith("model.")}, sd
    )

    # The averaged model is in our own format and loads.
    from training.model.checkpoint import load_model

    model, config, tokens = load_model(result.averaged)
    assert tokens[:3] == ["<blk>", "<sos/eos>", "<unk>"]
    assert config.vocab_size == len(tokens)


def test_timed_checkpoint_is_written_and_preferred_when_newer(corpus, tmp_path: Path):
    from training.lightning.smoke import write_smoke_recipe
    from training.train import find_resume_checkpoint, train

    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {
            "data": {"dev_cuts": [], "max_duration": 8},
            "checkpoint": {"every_n_steps": 100, "every_minutes": 1e-6},
        },
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(recipe, ["trainer.max_steps=20"], extra_callbacks=[Crash(at=3)])
    exp = recipe / "exp"
    assert not list(exp.glob("step-*.ckpt")) and not (exp / "last.ckpt").exists()
    timed = torch.load(exp / "time-last.ckpt", map_location="cpu", weights_only=False)
    assert timed["global_step"] == 3
    assert not list(exp.glob("*.tmp"))
    assert find_resume_checkpoint(exp) == exp / "time-last.ckpt"
    result = train(recipe, ["trainer.max_steps=4"])
    assert result.resumed_from == exp / "time-last.ckpt" and result.global_step == 4


def test_max_time_is_a_budget_per_session(corpus, tmp_path: Path):
    from training.lightning.smoke import write_smoke_recipe
    from training.train import train

    recipe = write_smoke_recipe(
        tmp_path / "recipe", corpus, {"data": {"dev_cuts": [], "max_duration": 8}}
    )
    first = train(recipe, ["trainer.max_time_minutes=0.02"])  # 1.2 s
    second = train(recipe, ["trainer.max_time_minutes=0.02"])
    assert first.global_step >= 1
    assert second.resumed_from is not None and second.global_step > first.global_step


class Seen(Callback):
    def __init__(self, crash_at: int | None = None) -> None:
        self.batches: list[tuple[int, tuple[str, ...]]] = []
        self.crash_at = crash_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append((trainer.current_epoch, tuple(batch["cut_ids"])))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.crash_at is not None and trainer.global_step >= self.crash_at:
            raise RuntimeError("simulated crash")


def test_resume_mid_epoch_continues_the_epoch_not_replays_it(corpus, tmp_path: Path):
    from training.lightning.smoke import write_smoke_recipe
    from training.train import train

    def recipe(name: str) -> Path:
        return write_smoke_recipe(
            tmp_path / name, corpus, {"data": {"dev_cuts": [], "max_duration": 3.5}}
        )

    reference = Seen()
    train(recipe("ref"), ["trainer.max_steps=8"], extra_callbacks=[reference])
    epochs = [e for e, _ in reference.batches]
    assert epochs.count(0) >= 2 and epochs.count(1) >= 3, epochs  # the crash lands mid-epoch 1

    cut = recipe("cut")
    crashed = Seen(crash_at=epochs.count(0) + 2)  # two batches into epoch 1, ckpt every 2 steps
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cut, ["trainer.max_steps=20"], extra_callbacks=[crashed])
    saved = torch.load(cut / "exp" / "last.ckpt", map_location="cpu", weights_only=False)
    done = saved["global_step"]
    assert saved["hotline"]["epoch_position"]["epoch"] == 1

    resumed = Seen()
    train(cut, ["trainer.max_steps=8"], extra_callbacks=[resumed])
    assert crashed.batches[:done] + resumed.batches == reference.batches


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_stops_after_the_step_with_a_checkpoint(corpus, tmp_path: Path, signame: str):
    """`kill -INT`/`-TERM` to the process group of a background run with a DataLoader worker
    (as systemd, Kubernetes or Ctrl-C do): it finishes the step, saves last.ckpt and the
    averaged model, and exits 0; started with SIGINT ignored, as `cmd &` in a script does."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from training.lightning.smoke import write_smoke_recipe

    recipe = write_smoke_recipe(
        tmp_path / "recipe", corpus, {"data": {"dev_cuts": [], "max_duration": 8, "num_workers": 1}}
    )
    cmd = [sys.executable, "-m", "hotline_asr.cli", "train", "--recipe", str(recipe)]
    proc = subprocess.Popen(
        [*cmd, "--max-steps", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        start_new_session=True,
    )
    exp = recipe / "exp"
    deadline = time.monotonic() + 240
    while not list(exp.glob("step-*.ckpt")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no step checkpoint within 240 s"
        time.sleep(0.2)
    os.killpg(proc.pid, getattr(signal, signame))  # the trainer and its worker
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert f"stopped early by {signame}" in out
    assert "not finished" in out and "recipe done" not in out  # it says to run it again
    saved = torch.load(exp / "last.ckpt", map_location="cpu", weights_only=False)
    assert 2 <= saved["global_step"] < 100000
    assert (exp / "averaged.pt").is_file() and (exp / "final.pt").is_file()


class _Numbers(torch.utils.data.Dataset):
    def __getitem__(self, index: int) -> int:
        return index


def _kill_workers_as_they_start(make_loader, rounds: int) -> list[int]:
    """SIGTERM every worker right after the loader forked it (before its ``worker_init_fn``,
    the window a process-group kill lands in when an epoch's loader is rebuilt)."""
    import os
    import signal

    got = []
    for _ in range(rounds):
        it = iter(make_loader())
        for worker in it._workers:
            os.kill(worker.pid, signal.SIGTERM)
        got.extend(it)
    return got


def test_loader_workers_survive_a_stop_signal_while_they_start():
    """The flaky SIGTERM stop above, made deterministic: a worker killed while starting made
    the trainer fail with "DataLoader worker exited unexpectedly" instead of stopping."""
    from training.lightning.datamodule import StopSignalSafeLoader, _ignore_stop_signals

    def loader(cls):
        return lambda: cls(
            _Numbers(),
            sampler=list(range(6)),
            batch_size=None,
            num_workers=2,
            worker_init_fn=_ignore_stop_signals,
            multiprocessing_context="fork",
        )

    assert _kill_workers_as_they_start(loader(StopSignalSafeLoader), 8) == list(range(6)) * 8
    # control: without the blocked mask the same kill takes a worker down
    with pytest.raises(RuntimeError, match="DataLoader worker"):
        _kill_workers_as_they_start(loader(torch.utils.data.DataLoader), 8)


class StopAt(Callback):
    """Asks the run to stop after ``at`` steps, as a time limit or a signal does."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.at:
            trainer.should_stop = True


class Batches(Callback):
    """Records (epoch, global step) of every trained batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen.append((trainer.current_epoch, trainer.global_step))


def test_run_stopped_mid_epoch_resumes_inside_that_epoch(corpus, tmp_path: Path):
    """A stop by time or signal keeps the epoch open: the resume trains the rest of the same
    epoch, then the next, and never an empty epoch."""
    from training.lightning.smoke import write_smoke_recipe
    from training.train import train

    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {"data": {"dev_cuts": [], "max_duration": 4, "sort_by_duration_epochs": 0}},
    )
    whole = Batches()
    train(recipe, ["trainer.max_epochs=1"], exp_dir=tmp_path / "whole", extra_callbacks=[whole])
    per_epoch = len(whole.seen)
    assert per_epoch >= 3, "the test needs an epoch of several batches"

    first = train(recipe, ["trainer.max_epochs=2"], extra_callbacks=[StopAt(1)])
    assert not first.completed and first.global_step == 1
    saved = torch.load(recipe / "exp" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 1 and saved["epoch"] == 0

    rest = Batches()
    second = train(recipe, ["trainer.max_epochs=2"], extra_callbacks=[rest])
    assert second.completed
    epochs = [e for e, _ in rest.seen]
    # the rest of epoch 0 (same seed: the same batches as the whole-epoch run), then epoch 1
    assert epochs.count(0) == per_epoch - 1 and epochs.count(1) >= 1
    assert second.global_step == 1 + len(rest.seen)
    # the run's wall time carries the first session's over: what the stop checkpoint held,
    # plus this session's training (which is within its trainer.fit)
    before = saved["hotline"]["wall_seconds"]
    assert 0 < before <= first.run_wall_seconds
    assert 0 < second.run_wall_seconds - before <= second.wall_seconds


def test_run_ended_on_an_epochs_last_batch_resumes_with_the_next_epoch(corpus, tmp_path: Path):
    """A run that reaches max_steps on the last batch of an epoch (validated at its end),
    resumed with a larger max_steps, trains the next epoch (Lightning would otherwise take that
    epoch as finished and train none of it)."""
    from training.lightning.smoke import write_smoke_recipe
    from training.train import train

    recipe = write_smoke_recipe(
        tmp_path / "recipe",
        corpus,
        {"data": {"max_duration": 8}},
    )
    whole = Batches()
    train(recipe, ["trainer.max_epochs=1"], exp_dir=tmp_path / "whole", extra_callbacks=[whole])
    per_epoch = len(whole.seen)

    first = train(recipe, [f"trainer.max_steps={per_epoch}"])
    assert first.completed and first.global_step == per_epoch
    rest = Batches()
    second = train(recipe, [f"trainer.max_steps={per_epoch + 2}"], extra_callbacks=[rest])
    assert second.completed and second.global_step == per_epoch + 2
    assert [e for e, _ in rest.seen] == [1, 1]
