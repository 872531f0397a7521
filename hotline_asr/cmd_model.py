"""`hotline-asr train` and `hotline-asr eval`: train a recipe, score a model on a test set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hotline_asr.errors import fail
from hotline_asr.options import LmOption, LmScaleOption
from serving.lm import DEFAULT_LM_SCALE
from training.served import SERVED_CHUNK_SIZE, SERVED_LEFT_CONTEXT


def train(
    recipe: Annotated[Path, typer.Option(help="Recipe folder holding config.yaml.")],
    init_from: Annotated[
        Path | None,
        typer.Option(help="Start from this checkpoint (ours, Lightning .ckpt or icefall's)."),
    ] = None,
    hyper_params: Annotated[
        Path | None,
        typer.Option(help="icefall hyper-params.json for --init-from (default: beside it)."),
    ] = None,
    freeze_encoder_stacks: Annotated[
        int | None, typer.Option(help="Freeze the front end and the first N encoder stacks.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    max_time: Annotated[float | None, typer.Option(help="Stop after this many minutes.")] = None,
    devices: Annotated[
        int | None, typer.Option(help="CPU processes (DDP over gloo when > 1).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set optim.base_lr=0.03 (repeat)."),
    ] = None,
    exp_dir: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default: RECIPE/exp).")
    ] = None,
) -> None:
    """Train (or resume) a recipe, stage by stage when it has stages; checkpoints go to
    RECIPE/exp, runs to MLflow."""
    import logging

    from training.stages import train_recipe

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    overrides = list(set_ or [])
    if init_from is not None:
        overrides.append(f"init.checkpoint={init_from}")
    if hyper_params is not None:
        overrides.append(f"init.hyper_params={hyper_params}")
    if freeze_encoder_stacks is not None:
        overrides.append(f"init.freeze_encoder_stacks={freeze_encoder_stacks}")
    if max_steps is not None:
        overrides.append(f"trainer.max_steps={max_steps}")
    if max_time is not None:
        overrides.append(f"trainer.max_time_minutes={max_time}")
    if devices is not None:
        overrides.append(f"trainer.devices={devices}")
    try:
        result = train_recipe(recipe, overrides, exp_dir=exp_dir)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from e
    if result.worker:  # another process of a DDP run: the main process reports
        return
    for st in result.stages:
        r = st.result
        if st.skipped:
            typer.echo(f"{st.name}: done earlier ({st.exp_dir})")
            continue
        typer.echo(
            (f"{st.name}: " if len(result.stages) > 1 else "")
            + f"step {r.global_step} in {r.wall_seconds / 60:.1f} min "
            f"({r.run_wall_seconds / 60:.1f} min in all): last {r.last_checkpoint}, "
            f"averaged {r.averaged}"
            + (f", resumed from {r.resumed_from}" if r.resumed_from else "")
            + (f", mlflow run {r.mlflow_run_id}" if r.mlflow_run_id else "")
            + (f"; stopped early by {r.stopped_by}" if r.stopped_by else "")
        )
    if len(result.stages) > 1 or result.stopped:
        # a one-configuration run stopped early still averages what it has: not "done"
        typer.echo(
            f"not finished ({result.stopped}); run the same command again to carry on"
            if result.stopped
            else f"recipe done: {result.averaged}"
        )


def eval_(
    data: Annotated[Path, typer.Option(help="Kaldi-style folder or cuts manifest (.jsonl.gz).")],
    model: Annotated[
        Path | None,
        typer.Option(help="Model file (ours/.ckpt/icefall .pt) or ONNX export folder."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    method: Annotated[
        str, typer.Option(help="greedy | beam | ctc (torch model with a CTC head)")
    ] = "greedy",
    beam: Annotated[int, typer.Option(help="Beam size for --method beam.")] = 4,
    max_sym_per_frame: Annotated[
        int, typer.Option(help="Greedy: symbols one encoder frame may emit (torch models).")
    ] = 1,
    blank_penalty: Annotated[
        float,
        typer.Option(help="Subtract this from the blank logit: a model that deletes emits more."),
    ] = 0.0,
    chunk_size: Annotated[int, typer.Option(help="Chunk size, 50 Hz frames.")] = SERVED_CHUNK_SIZE,
    left_context: Annotated[
        int, typer.Option(help="Left context, 50 Hz frames.")
    ] = SERVED_LEFT_CONTEXT,
    streaming: Annotated[
        bool, typer.Option("--streaming", help="Run the chunk-by-chunk streaming encoder.")
    ] = False,
    hotwords: Annotated[
        Path | None, typer.Option(help="Hot words, one per line (needs --method beam).")
    ] = None,
    hotword_score: Annotated[float, typer.Option(help="Bonus per hot-word token.")] = 1.5,
    lm: LmOption = None,
    lm_scale: LmScaleOption = DEFAULT_LM_SCALE,
    hyper_params: Annotated[
        Path | None, typer.Option(help="icefall hyper-params.json (default: beside the model).")
    ] = None,
    max_utts: Annotated[int | None, typer.Option(help="Score only the first N.")] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="ONNX folder: decode with its *.int8.onnx files.")
    ] = False,
    pinyin: Annotated[
        bool,
        typer.Option(
            "--pinyin",
            help="Also score pinyin syllables with and without tone: sounds, tones, homophones.",
        ),
    ] = False,
    telephone_seed: Annotated[
        int | None,
        typer.Option(
            help="Pass every utterance through a telephone channel first (8 kHz band, G.711, "
            "noise), drawn per utterance from this seed; features come from the audio."
        ),
    ] = None,
    lead_silence: Annotated[
        float,
        typer.Option(
            help="Seconds of digital silence before every utterance (before the telephone "
            "channel), as a call opens; features come from the audio."
        ),
    ] = 0.0,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE: score only utterances with this slice label, e.g. text=sentences "
            "(repeat for several; before --max-utts)."
        ),
    ] = None,
    rescore: Annotated[
        Path | None,
        typer.Option(
            help="Score the hypotheses of this earlier --output report against --data instead "
            "of decoding (after a change to the scoring rules); no --model needed."
        ),
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Log the evaluation as an MLflow run.")
    ] = False,
    experiment: Annotated[str, typer.Option(help="MLflow experiment for --mlflow.")] = "eval",
) -> None:
    """Score a model: CER, substitutions/deletions/insertions, per-slice tables."""
    from training.evaluate import EvalOptions, evaluate
    from training.evaluate import rescore as rescore_report

    try:
        wanted = _parse_only(only or [])
    except ValueError as e:
        raise fail(str(e)) from e
    if rescore is not None:
        if model is not None:
            raise fail("--rescore scores a report's saved hypotheses: leave out --model")
        try:
            result = rescore_report(rescore, data, pinyin=pinyin or None, only=wanted)
        except (FileNotFoundError, ValueError) as e:
            raise fail(str(e)) from e
        _print_eval(result, json_, output)
        return
    if model is None:
        raise fail("give --model (a model file or ONNX folder), or --rescore REPORT.json")

    words: list[str] = []
    if hotwords is not None:
        if not hotwords.is_file():
            raise fail(f"hot-word file {hotwords} not found")
        words = [w.strip() for w in hotwords.read_text("utf-8").splitlines() if w.strip()]
    opts = EvalOptions(
        method=method,
        beam=beam,
        max_sym_per_frame=max_sym_per_frame,
        blank_penalty=blank_penalty,
        chunk_size=chunk_size,
        left_context=left_context,
        streaming=streaming,
        hotwords=words,
        hotword_score=hotword_score,
        lm=str(lm) if lm is not None else None,
        lm_scale=lm_scale,
        max_utts=max_utts,
        int8=int8,
        pinyin=pinyin,
        telephone_seed=telephone_seed,
        lead_silence=lead_silence,
        only=wanted,
    )
    try:
        result = evaluate(model, data, opts, hyper_params=hyper_params)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from e
    text = _print_eval(result, json_, output)
    if mlflow:
        import tempfile

        from registry.tracking import log_evaluation

        o = result.report.overall
        interval = result.report.interval
        bounds = {"cer_low": interval.low, "cer_high": interval.high} if interval else {}
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "eval_report.json"
            report.write_text(text, encoding="utf-8")
            run_id = log_evaluation(
                experiment,
                f"{Path(model).name} on {Path(data).name}",
                {"model": str(model), "data": str(data), **opts.__dict__, "hotwords": len(words)},
                {
                    "cer": o.cer,
                    "sub": o.sub,
                    "del": o.del_,
                    "ins": o.ins,
                    "ref_chars": o.ref_chars,
                    "rtf": result.rtf,
                    **bounds,
                },
                [report],
            )
        typer.echo(f"mlflow run {run_id}", err=True)


def _parse_only(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--only wants KEY=VALUE, such as text=sentences; got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _print_eval(result, json_: bool, output: Path | None) -> str:
    text = result.to_json()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    if json_:
        typer.echo(text)
    else:
        typer.echo(result.report.format_table())
        typer.echo(f"RTF {result.rtf:.3f} ({result.audio_seconds:.1f} s audio)")
    return text


def average(
    exp_dir: Annotated[
        Path, typer.Argument(help="A training run's folder with step-*.ckpt files.")
    ],
    out: Annotated[Path, typer.Argument(help="Where to write the averaged model (.pt).")],
    last: Annotated[
        int | None, typer.Option(help="Average the last N checkpoints by step.")
    ] = None,
    steps: Annotated[
        str | None, typer.Option(help="Average exactly these steps, e.g. 100,200,300.")
    ] = None,
) -> None:
    """Average a run's checkpoints into one model file, as `train` does with
    checkpoint.average_last; use it to weigh other averaging windows after a run."""
    from training.train import average_checkpoints, select_checkpoints

    if not exp_dir.is_dir():
        raise fail(f"{exp_dir} is not a folder; give a run's folder such as exp/joiner")
    wanted: list[int] | None = None
    if steps is not None:
        try:
            wanted = [int(x) for x in steps.split(",") if x.strip()]
        except ValueError:
            raise fail(f"--steps takes step numbers separated by commas, got {steps!r}") from None
    try:
        picked = select_checkpoints(exp_dir, last=last, steps=wanted)
    except ValueError as e:
        raise fail(str(e)) from None
    average_checkpoints(picked, out)
    typer.echo(f"wrote {out}: the average of {', '.join(p.name for p in picked)}")


def joiner_from_ctc(
    model: Annotated[Path, typer.Argument(help="Model file with a CTC head (save_model format).")],
    out: Annotated[Path, typer.Argument(help="Where to write the rewritten model.")],
    scale: Annotated[
        float, typer.Option(help="Factor on the encoder output inside the joiner.")
    ] = 0.2,
) -> None:
    """Rewrite a trained model's joiner from its character CTC head (see
    training/model/ctc_joiner.py): it then decodes like the head, with the same search and export."""
    from training.model.ctc_joiner import rewrite_model_file

    if not model.is_file():
        raise fail(f"{model} does not exist; give a model file such as exp/averaged.pt")
    try:
        rewrite_model_file(model, out, scale)
    except ValueError as e:
        raise fail(str(e)) from None
    typer.echo(f"wrote {out} (joiner from the CTC head of {model}, scale {scale})")


def info(
    model: Annotated[
        Path, typer.Argument(help="Model file: ours (.pt), a recipe's exp/*.ckpt or icefall's.")
    ],
    hyper_params: Annotated[
        Path | None, typer.Option(help="icefall hyper-params.json (default: beside the model).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Describe a torch model: architecture, streaming settings, vocabulary, parameters by part."""
    import json

    from training.model.size import count_parameters
    from training.model.transducer import Transducer
    from training.train import read_init_checkpoint

    if model.is_dir():
        raise fail(
            f"{model} is a folder; `info` reads a torch model file (an ONNX export's "
            "sizes are its files' sizes)"
        )
    try:
        init = read_init_checkpoint(model, hyper_params)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from e
    config = init.config.to_dict()
    size = count_parameters(Transducer(init.config))
    if json_:
        typer.echo(json.dumps({"config": config, "parameters": size.to_dict()}, indent=2))
        return
    c = init.config
    typer.echo(f"{model}")
    typer.echo(
        f"  encoder: {len(c.num_encoder_layers)} stacks, layers {list(c.num_encoder_layers)}, "
        f"dims {list(c.encoder_dim)}, downsampling {list(c.downsampling_factor)}"
    )
    typer.echo(
        f"  {'causal (streaming)' if c.causal else 'non-causal'}; trained chunk sizes "
        f"{list(c.chunk_size)}, left contexts {list(c.left_context_frames)}; "
        f"served chunk {SERVED_CHUNK_SIZE}, left context {SERVED_LEFT_CONTEXT}"
    )
    typer.echo(
        f"  vocabulary {c.vocab_size} tokens"
        + (f" ({len(init.tokens)} in the file)" if init.tokens is not None else "")
        + f"; decoder context {c.context_size}; CTC head {'yes' if c.use_ctc else 'no'}"
    )
    typer.echo("parameters:")
    typer.echo("\n".join("  " + line for line in size.format_table().splitlines()))
