"""Lightning callbacks used by :func:`training.train.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


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
