"""`hotline-asr export` on the icefall fixture: files, summary, parity table, exit codes."""

from __future__ import annotations

from typer.testing import CliRunner


def test_cli_exports_and_checks_fixture(icefall_fixture, tmp_path):
    from hotline_asr.cli import app

    out = tmp_path / "onnx"
    args = ["export", str(icefall_fixture / "epoch-99.pt"), str(out), "--no-int8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "T=45" in result.output and "left_context_len=128,64,32,16,32,64" in result.output
    assert "greedy transcripts agree (fp32)" in result.output
    assert result.output.rstrip().endswith("yes")
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder.onnx",
        "encoder.onnx",
        "joiner.onnx",
        "tokens.txt",
    ]


def test_cli_reports_bad_chunk_size(icefall_fixture, tmp_path):
    from hotline_asr.cli import app

    args = ["export", str(icefall_fixture / "epoch-99.pt"), str(tmp_path), "--chunk-size", "12"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "chunk_size=12 must be a positive multiple" in result.output
    assert not (tmp_path / "encoder.onnx").exists()
