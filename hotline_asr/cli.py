"""The one typer app. Each sub-command lives in a small ``cmd_*`` module that parses options and
calls into the packages; heavy imports (torch, lhotse, onnxruntime) happen inside the command
bodies so that ``hotline-asr --help`` and the text tools start fast."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="hotline-asr: speech-to-text for a 12345 citizen-service hotline.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(
    help="Make, import, featurize and describe speech data.", no_args_is_help=True
)
text_app = typer.Typer(help="Text normalization and desensitization.", no_args_is_help=True)
lm_app = typer.Typer(help="Character n-gram language models for beam search.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(text_app, name="text")
app.add_typer(lm_app, name="lm")

# (typer app, command name, module under hotline_asr, function name)
_COMMANDS: list[tuple[typer.Typer, str, str, str]] = [
    (text_app, "normalize", "cmd_text", "normalize"),
    (text_app, "desensitize", "cmd_text", "desensitize"),
    (data_app, "synth", "cmd_synth", "synth"),
    (data_app, "render-call", "cmd_synth", "render_call"),
    (data_app, "import", "cmd_data", "import_"),
    (data_app, "fbank", "cmd_data", "fbank"),
    (data_app, "stats", "cmd_data", "stats"),
    (app, "train", "cmd_model", "train"),
    (app, "eval", "cmd_model", "eval_"),
    (app, "compare", "cmd_compare", "compare"),
    (app, "average", "cmd_model", "average"),
    (app, "joiner-from-ctc", "cmd_model", "joiner_from_ctc"),
    (app, "info", "cmd_model", "info"),
    (app, "export", "cmd_export", "export"),
    (app, "transcribe", "cmd_serve", "transcribe"),
    (lm_app, "build", "cmd_lm", "build"),
]


def _register() -> None:
    for target, name, module, func in _COMMANDS:
        try:
            mod = importlib.import_module(f"hotline_asr.{module}")
        except ModuleNotFoundError as e:  # a command whose module is not written yet
            if e.name != f"hotline_asr.{module}":
                raise
            continue
        fn = getattr(mod, func, None)
        if fn is not None:
            target.command(name)(fn)


_register()

if __name__ == "__main__":
    app()
