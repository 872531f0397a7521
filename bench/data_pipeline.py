"""Benchmark the data pipeline: `data synth` -> `data import` -> `data fbank` on a temp folder.

Prints, per stage, the audio hours processed per wall-clock hour (each stage is run as the CLI
command a user would type, so interpreter start-up and imports are included).

    .venv/bin/python bench/data_pipeline.py --hours 0.05 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hotline_asr.cli", *args]


def _run(stage: str, cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(
            f"stage {stage} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return seconds


def _check_synth_available() -> None:
    proc = subprocess.run(_cli("data", "synth", "--help"), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(
            "`hotline-asr data synth` is not available (hotline_asr/cmd_synth.py with a `synth` "
            "command is needed); this benchmark cannot make its input without it.\n"
            + proc.stderr[-1000:]
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=0.05, help="audio to generate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="processes for synth and fbank")
    ap.add_argument("--workdir", type=Path, help="keep the files here (default: a temp folder)")
    args = ap.parse_args()

    _check_synth_available()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = args.workdir or Path(tmp)
        corpus = "bench"
        synth_dir = work / "synth"
        seconds = {
            "synth": _run(
                "synth",
                _cli(
                    "data",
                    "synth",
                    "--hours",
                    str(args.hours),
                    "--seed",
                    str(args.seed),
                    "--jobs",
                    str(args.jobs),
                    "--out",
                    str(synth_dir),
                    "--no-progress",
                ),
            ),  # fmt: skip
            "import": _run(
                "import",
                _cli("data", "import", str(synth_dir), "--corpus", corpus, "--out", str(work)),
            ),
            "fbank": _run(
                "fbank",
                _cli(
                    "data",
                    "fbank",
                    "--corpus",
                    corpus,
                    "--manifests",
                    str(work / "manifests"),
                    "--out",
                    str(work / "fbank"),
                    "--jobs",
                    str(args.jobs),
                ),
            ),  # fmt: skip
        }
        reports = sorted((work / "manifests").glob(f"{corpus}_import_report_*.json"))
        hours = sum(json.loads(p.read_text())["hours"] for p in reports)
        utts = sum(json.loads(p.read_text())["utterances"] for p in reports)

    print(
        f"data pipeline: {hours:.4f} h of audio ({utts} utterances), jobs={args.jobs}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'stage':<8} {'wall s':>8} {'audio h per wall h':>19}")
    for stage, s in [*seconds.items(), ("total", sum(seconds.values()))]:
        print(f"{stage:<8} {s:>8.1f} {hours / (s / 3600):>19.1f}")


if __name__ == "__main__":
    main()
