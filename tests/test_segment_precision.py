"""SAM's "auto" precision is measured on the machine (both precisions on one frame, masks
compared), stored per machine and model under cache/sam/precision/, and reused.

The engine tests use the tiny random SAM (``build_tiny_sam``: a calibration takes about a
second); a full vit_b calibration (~20 s on 2 cores) is measured by bench/sam_click.py instead.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from endolite.segment import precision
from endolite.segment.precision import Calibration, calibrate, decide, load_calibration
from endolite.synthetic import moving_disc_frames


def test_decide_needs_speed_and_agreeing_masks():
    assert decide(7.6, 4.0, 0.996)[0] == "bf16"                   # the EPYC AVX512-BF16 case
    assert "0.53x" in decide(7.6, 4.0, 0.996)[1]
    assert decide(6.0, 9.0, 0.999)[0] == "fp32"                   # slower
    assert decide(6.0, 5.9, 0.999)[0] == "fp32"                   # within noise
    choice, reason = decide(6.0, 3.0, 0.95)
    assert choice == "fp32" and "differ" in reason                # fast but masks disagree
    assert decide(6.0, None, None)[0] == "fp32"                   # no bfloat16 here


class FakeEncoder:
    """embed(mode) takes a fixed number of fake-clock seconds per precision; masks from the
    bf16 embedding are shifted by ``shift`` pixels."""

    def __init__(self, seconds: dict[str, float], shift: int = 0):
        self.seconds, self.shift, self.now, self.calls = seconds, shift, 0.0, []

    def clock(self) -> float:
        return self.now

    def embed(self, mode: str) -> str:
        self.calls.append(mode)
        self.now += self.seconds[mode] + (1.0 if len(self.calls) <= 2 else 0.0)  # slow first run
        return mode

    def masks(self, embedding: str, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        out = np.zeros((3, 40, 60), bool)
        x, y = (int(v) for v in points[0])
        if embedding == "bf16":
            x += self.shift
        out[:, max(y - 10, 0):y + 10, max(x - 10, 0):x + 10] = True
        return out


@pytest.mark.parametrize("seconds, shift, expected", [
    ({"fp32": 6.0, "bf16": 2.0}, 0, "bf16"),
    ({"fp32": 6.0, "bf16": 9.0}, 0, "fp32"),
    ({"fp32": 6.0, "bf16": 2.0}, 3, "fp32"),
])
def test_calibrate_times_both_precisions_and_compares_masks(seconds, shift, expected):
    fake = FakeEncoder(seconds, shift)
    result, embeddings = calibrate(fake.embed, fake.masks, image_size=(40, 60), machine="m",
                                   model="tiny", bf16=True, runs=2, clock=fake.clock)
    assert fake.calls == ["fp32", "bf16", "fp32", "bf16"], "interleaved"
    assert (result.fp32_s, result.bf16_s) == (seconds["fp32"], seconds["bf16"]), \
        "fastest run counts: the first run's set-up does not"
    assert result.choice == expected and set(embeddings) == {"fp32", "bf16"}
    assert (result.mask_iou_mean == 1.0) == (shift == 0)


def test_calibrate_without_bf16_runs_float32_only():
    fake = FakeEncoder({"fp32": 1.0, "bf16": 0.1})
    result, embeddings = calibrate(fake.embed, fake.masks, image_size=(40, 60), machine="m",
                                   model="tiny", bf16=False, runs=2, clock=fake.clock)
    assert fake.calls == ["fp32", "fp32"] and result.choice == "fp32"
    assert result.bf16_s is None and "not supported" in result.reason and set(embeddings) == {"fp32"}


# --- the engine: measured once, stored per machine and model, reused -------------------------

@pytest.fixture(scope="module")
def tiny_model():
    from endolite.segment.sam import build_tiny_sam

    return build_tiny_sam()


def _engine(tiny_model, cache_dir, **kwargs):
    from endolite.segment.sam import SamSegmenter

    return SamSegmenter("tiny", model=tiny_model, cache_dir=cache_dir, **kwargs)


def test_auto_calibrates_on_the_first_frame_and_later_engines_reuse_it(tiny_model, tmp_path):
    frame, _ = next(moving_disc_frames(1, height=144, width=192))
    engine = _engine(tiny_model, tmp_path)
    embedding = engine.embed(frame, key="a" * 64)
    supported = precision.bf16_supported()
    assert engine.calibration_runs == (4 if supported else 2), "2 runs per precision"
    assert engine.encoder_runs == 1, "the calibration's embedding of the chosen precision is kept"
    result = engine.calibration
    assert engine.precision == result.choice == embedding.precision
    assert result.model == "tiny (given model)" and result.image_size == (144, 192)
    assert result.machine == precision.machine_id()
    files = list((tmp_path / "sam" / "precision").glob("*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["choice"] == result.choice and stored["fp32_s"] > 0
    if supported:
        assert stored["bf16_s"] > 0 and 0 <= stored["mask_iou_mean"] <= 1
        assert stored["bf16_over_fp32"] == pytest.approx(stored["bf16_s"] / stored["fp32_s"], abs=1e-3)

    # a new engine (a restart) reads the stored choice: the encoder does not run for it
    fresh = _engine(tiny_model, tmp_path)
    forward = tiny_model.image_encoder.forward
    try:
        tiny_model.image_encoder.forward = lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran"))
        assert fresh.precision == result.choice
    finally:
        tiny_model.image_encoder.forward = forward
    assert fresh.calibration == result and fresh.calibration_runs == 0

    # another model (checkpoint) or machine measures again; force re-measures
    assert load_calibration(tmp_path / "sam", "another machine", result.model) is None
    assert load_calibration(tmp_path / "sam", result.machine, "vit_b (sam_vit_b.pth)") is None
    again = fresh.calibrate(frame, force=True, runs=1)
    assert fresh.calibration_runs == (2 if supported else 1) and again.runs == 1


def test_a_damaged_calibration_file_is_measured_again(tiny_model, tmp_path):
    engine = _engine(tiny_model, tmp_path)
    first = engine.calibrate(runs=1)                      # synthetic frame
    path = precision.calibration_path(tmp_path / "sam", first.machine, first.model)
    path.write_text("{not json")
    fresh = _engine(tiny_model, tmp_path)
    assert fresh.stored_calibration() is None
    assert fresh.calibrate(runs=1).choice in ("bf16", "fp32") and fresh.calibration_runs >= 1
    assert isinstance(Calibration.from_json(json.loads(path.read_text())), Calibration)


def test_explicit_precision_never_calibrates(tiny_model, tmp_path):
    frame, _ = next(moving_disc_frames(1, height=64, width=96))
    engine = _engine(tiny_model, tmp_path, precision="fp32")
    assert engine.embed(frame).precision == "fp32" and engine.calibration_runs == 0
    assert not (tmp_path / "sam" / "precision").exists()
    with pytest.raises(Exception, match="precision"):
        _engine(tiny_model, tmp_path, precision="fp8")


def test_the_environment_can_fix_the_precision(settings, monkeypatch):
    from endolite.errors import InvalidInput
    from endolite.segment import ENV_CHECKPOINT, ENV_PRECISION, engine_for

    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)
    folder = settings.models_dir / "sam"
    folder.mkdir(parents=True)
    (folder / "sam_vit_b_x.pth").write_bytes(b"not loaded until first use")
    monkeypatch.delenv(ENV_PRECISION, raising=False)
    assert engine_for(settings)._requested == "auto"
    monkeypatch.setenv(ENV_PRECISION, "fp32")
    engine = engine_for(settings)
    assert engine.precision == "fp32" and engine.calibration_runs == 0, "no measurement, no model load"
    assert engine_for(settings, precision="bf16")._requested == "bf16", "an explicit option wins"
    monkeypatch.setenv(ENV_PRECISION, "fast")
    with pytest.raises(InvalidInput, match=ENV_PRECISION):
        engine_for(settings)
