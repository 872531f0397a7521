"""The engine deploys lean: no torch, lightning or mlflow anywhere in its import graph."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import sys
import serving.engine
assert "onnxruntime" not in sys.modules, "serving.engine/__init__ must stay light"
import serving.engine.endpoint, serving.engine.model, serving.engine.offline
import serving.engine.recognizer, serving.engine.search, serving.engine.vad
import hotline_asr.cmd_serve
heavy = sorted(m for m in ("torch", "lightning", "mlflow") if m in sys.modules)
print(",".join(heavy) or "clean")
"""


def test_engine_imports_no_training_stack():
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
