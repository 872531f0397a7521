from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is missing: the shared/ folder sits beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def icefall_fixture(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "icefall-zipformer2-small"


@pytest.fixture(scope="session")
def neural_voice(shared_dir: Path) -> Path:
    return shared_dir / "datasets" / "neural-voice-zh"
