"""Shared fixtures: a fresh data directory + connection, synthetic videos, the real samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from endolite.config import Settings
from endolite.storage import connect
from endolite.synthetic import write_disc_video

REAL = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real").resolve()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.resolve(tmp_path / "data")


@pytest.fixture
def con(settings: Settings):
    connection = connect(settings)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def disc_video(tmp_path_factory) -> Path:
    """A 100-frame 192x144 H.264 video (25 fps, keyframe every 25 frames) of a moving disc."""
    path = tmp_path_factory.mktemp("media") / "disc.mp4"
    return write_disc_video(path, 100, gop=25)


@pytest.fixture(scope="session")
def real() -> Path:
    """../shared/data/real (research-only samples: read in place, never copied into the repo)."""
    if not REAL.is_dir():
        pytest.skip(f"real sample data not found at {REAL}")
    return REAL


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in __import__("sys").path:  # app.py / pages import the top-level ui module
    __import__("sys").path.insert(0, str(ROOT))


@pytest.fixture
def app_env(settings: Settings, monkeypatch):
    """Point the dashboard (AppTest) at a fresh data dir; returns the Settings."""
    monkeypatch.setenv("ENDOLITE_DATA", str(settings.data_dir))
    monkeypatch.chdir(ROOT)
    return settings
