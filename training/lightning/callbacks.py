"""Lightning callbacks used by :func:`training.train.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback, Timer


class MlflowRunContext(Callback):
    """Logs the flattened config, git commit and manifest hashes once per MLflow run (rank 0)
    and remembers the run id in ``run_file`` so a resumed training continues the same run."""

    def __init__(self, config: dict[str, Any], manifests: list[Path], run_file: Path) -> None:
        self.config = config
        self.manifests = manifests
        self.run_file = run_file

    def on_fit_start(self, trainer, pl_module) -> None:
        logger = trainer.logger
        if not trainer.is_global_zero or not logger or not getattr(logger, "run_id", None):
            return
        from registry.tracking import log_run_context

        if self.run_file.is_file() and self.run_file.read_text().strip() == logger.run_id:
            return  # resumed: the run already has its params
        log_run_context(logger.experiment, logger.run_id, self.config, self.manifests)
        self.run_file.write_text(logger.run_id)


class TimedCheckpoint(Callback):
    """Saves ``time-last.ckpt`` every ``minutes`` of training (written to a temporary name and
    renamed, so a kill mid-write leaves the previous file intact). Lightning's own
    ``ModelCheckpoint(train_time_interval=...)`` is not applied under manual optimization."""

    def __init__(self, dirpath: Path, minutes: float) -> None:
        if minutes <= 0:
            raise ValueError(f"TimedCheckpoint needs minutes > 0, got {minutes}")
        self.path = Path(dirpath) / "time-last.ckpt"
        self.seconds = minutes * 60.0
        self._last = None

    def on_train_start(self, trainer, pl_module) -> None:
        import time

        self._last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import time

        due = self._last is not None and time.monotonic() - self._last >= self.seconds
        due = trainer.strategy.broadcast(due)  # rank 0 decides: every rank must join the save
        if not due:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            tmp.replace(self.path)
        self._last = time.monotonic()


class SessionTimer(Timer):
    """Lightning's ``Timer`` whose budget counts from this invocation: the elapsed time of
    earlier (interrupted) sessions in a resumed checkpoint is not carried over, so
    ``--max-time 60`` always means "train for another hour"."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None


class GracefulStop(Callback):
    """On SIGTERM or SIGINT, finish the current step and stop, so ``train`` writes
    ``last.ckpt`` and the averaged models as after a normal end; a second signal aborts at once.

    SIGINT is handled too when the shell started the run in the background (which makes it
    ignore SIGINT), so ``kill -INT`` stops a ``nohup``'d run just as Ctrl-C stops a foreground
    one. Handlers can only be set from the main thread; elsewhere the callback does nothing.
    Under DDP every rank stops at the same step once any rank got the signal.
    """

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        import signal

        if self.received is not None:  # second signal: give up waiting for the step
            self._restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.received = signal.Signals(signum).name

    def _restore(self) -> None:
        import signal

        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def on_train_start(self, trainer, pl_module) -> None:
        # After Lightning's own SIGTERM handler is set (it would raise out of the loop and
        # skip the final checkpoint): ours replaces it until the end of fit.
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            signum = getattr(signal, name)
            self._previous[signum] = signal.signal(signum, self._handler)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        if stop and not trainer.should_stop:
            import logging

            logging.getLogger(__name__).warning(
                "%s received: stopping after step %d; checkpoint follows (send it again to "
                "abort without one)",
                self.received or "stop signal on another rank",
                trainer.global_step,
            )
            trainer.should_stop = True

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()


class CheckpointOnStop(Callback):
    """Saves ``path`` at the step where the run is told to stop early (a time limit, a signal):
    a checkpoint from inside the epoch, so a resume carries on with that epoch's remaining
    batches. Saved after the loop has wound down instead, the epoch counts as finished and its
    rest is never trained. Register it after the callbacks that set ``trainer.should_stop``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.saved_at: int | None = None  # the global step of the saved checkpoint

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.should_stop or self.saved_at is not None:
            return
        if 0 < trainer.max_steps <= trainer.global_step:
            return  # a normal end: train() saves the final state
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            tmp.replace(self.path)
        self.saved_at = trainer.global_step


class ProgressLog(Callback):
    """A log line every ``every`` steps (main process): epoch, step, loss, learning rate and
    throughput, for runs without a progress bar (``nohup`` logs, CI)."""

    def __init__(self, every: int) -> None:
        if every <= 0:
            raise ValueError(f"ProgressLog needs every > 0, got {every}")
        self.every = every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every or not trainer.is_global_zero:
            return
        import logging

        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        rate = getattr(pl_module, "audio_per_sec", 0.0)
        logging.getLogger("hotline_asr.train").info(
            "epoch %d step %d: loss %.4f, lr %.2e, %.1f s of audio per s",
            trainer.current_epoch,
            step,
            getattr(pl_module, "last_loss", float("nan")),
            lr,
            rate,
        )
