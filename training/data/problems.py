"""Bad input found while importing a corpus: stop with :class:`CorpusError`, or (``skip_bad``)
skip the item and list it in the import report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

# What can be wrong with an input item.
KINDS = (
    "missing-audio",  # the audio file named in wav.scp / the manifest does not exist
    "unreadable-audio",  # it exists but does not decode (or has no samples)
    "sample-rate",  # its sample rate differs from the one claimed (meta.jsonl, --sample-rate)
    "empty-transcript",  # no text, or nothing left after normalization
    "unusable-transcript",  # characters other than Chinese or Latin letters remain
    "duplicate-id",  # the same id twice in one file
    "id-mismatch",  # an id in one file (wav.scp, text, segments, utt2spk) missing in another
    "piped-command",  # a wav.scp entry that runs a command, or reads an ark offset
    "bad-line",  # a line that cannot be parsed
    "bad-segment",  # a segment outside its recording, or of zero length
)


@dataclass(frozen=True)
class Problem:
    """One bad input item: what, where (file and 1-based line, when there is one), which id."""

    kind: str
    path: str
    line: int | None
    utt_id: str | None
    message: str

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


class CorpusError(Exception):
    """The input corpus has a bad item; the message names the file and line.

    Fix the input, or import with ``--skip-bad`` to leave such items out (they are then listed
    in ``{corpus}_import_report_{split}.json``).
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(f"{problem} [{problem.kind}]; fix it or import with --skip-bad")


class ProblemLog:
    """Collects problems when ``skip_bad`` is set, else raises on the first one."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.problems: list[Problem] = []

    def add(
        self,
        kind: str,
        path: str | Path,
        line: int | None,
        message: str,
        utt_id: str | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        problem = Problem(kind=kind, path=str(path), line=line, utt_id=utt_id, message=message)
        if not self.skip_bad:
            raise CorpusError(problem)
        self.problems.append(problem)
