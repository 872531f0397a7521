"""Where manifests live (icefall's names) and how they are written: atomically, never half.

Layout under the output root (``data/`` by default):

- ``manifests/{corpus}_recordings_{split}.jsonl.gz``  (import)
- ``manifests/{corpus}_supervisions_{split}.jsonl.gz`` (import)
- ``manifests/{corpus}_cuts_{split}_raw.jsonl.gz``     (import: cuts without features)
- ``manifests/{corpus}_import_report_{split}.json``    (import: counts and skipped items)
- ``fbank/{corpus}_cuts_{split}.jsonl.gz``             (fbank: the same cuts with features)
- ``fbank/{corpus}_feats_{split}/``                    (fbank: lilcom chunky feature files)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


def check_name(kind: str, name: str) -> str:
    """Corpus and split names go into file names: letters, digits, '.', '-' (no '_')."""
    if not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} is not usable in file names; use letters, digits, '.' or '-'"
        )
    return name


def recordings_path(manifests: Path, corpus: str, split: str) -> Path:
    return Path(manifests) / f"{corpus}_recordings_{split}.jsonl.gz"


def supervisions_path(manifests: Path, corpus: str, split: str) -> Path:
    return Path(manifests) / f"{corpus}_supervisions_{split}.jsonl.gz"


def raw_cuts_path(manifests: Path, corpus: str, split: str) -> Path:
    return Path(manifests) / f"{corpus}_cuts_{split}_raw.jsonl.gz"


def import_report_path(manifests: Path, corpus: str, split: str) -> Path:
    return Path(manifests) / f"{corpus}_import_report_{split}.json"


def fbank_cuts_path(fbank_dir: Path, corpus: str, split: str) -> Path:
    return Path(fbank_dir) / f"{corpus}_cuts_{split}.jsonl.gz"


def feats_dir(fbank_dir: Path, corpus: str, split: str) -> Path:
    return Path(fbank_dir) / f"{corpus}_feats_{split}"


def find_splits(manifests: Path, corpus: str, kind: str = "supervisions") -> list[str]:
    """Splits that have a ``{corpus}_{kind}_{split}.jsonl.gz`` in ``manifests``, sorted."""
    pattern = re.compile(rf"^{re.escape(corpus)}_{kind}_(?P<split>[^_]+)\.jsonl\.gz$")
    found = []
    for p in Path(manifests).glob(f"{corpus}_{kind}_*.jsonl.gz"):
        m = pattern.match(p.name)
        if m:
            found.append(m.group("split"))
    return sorted(found)


def find_corpora(manifests: Path) -> list[str]:
    """Corpus names that have supervisions manifests in ``manifests``, sorted."""
    pattern = re.compile(r"^(?P<corpus>.+)_supervisions_[^_]+\.jsonl\.gz$")
    names = {
        m.group("corpus")
        for p in Path(manifests).glob("*.jsonl.gz")
        if (m := pattern.match(p.name))
    }
    return sorted(names)


def _temp_beside(path: Path) -> Path:
    # Keep the real suffixes: lhotse picks the format (jsonl, gzip) from the file name.
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


class AtomicWriter:
    """Writes files to temporary names first; :meth:`commit` moves them all into place.

    If anything fails before ``commit``, :meth:`abort` (or leaving the ``with`` block with an
    exception) deletes the temporaries and the previous files stay as they were.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def temp_for(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(path)
        self._pending.append((tmp, path))
        return tmp

    def manifest(self, manifest: Any, path: Path) -> None:
        """A lhotse manifest (RecordingSet, SupervisionSet, CutSet, ...)."""
        manifest.to_file(self.temp_for(path))

    def json(self, obj: Any, path: Path) -> None:
        tmp = self.temp_for(path)
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def commit(self) -> None:
        for tmp, final in self._pending:
            os.replace(tmp, final)
        self._pending = []

    def abort(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending = []


def write_json_atomic(obj: Any, path: Path) -> None:
    with AtomicWriter() as w:
        w.json(obj, path)
