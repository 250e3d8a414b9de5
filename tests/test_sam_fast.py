"""The bfloat16 SAM encoder copy (endolite.segment.sam_fast): fused relative-position attention
gives the same result as segment-anything's, the copy leaves the float32 model untouched, and
the engine's bf16 embeddings come from it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segment_anything.modeling import image_encoder as ie  # noqa: E402

from endolite.segment.precision import bf16_supported  # noqa: E402
from endolite.segment.sam import SamSegmenter, build_tiny_sam  # noqa: E402
from endolite.segment.sam_fast import bf16_encoder, fuse_attention  # noqa: E402
from endolite.synthetic import moving_disc_frames  # noqa: E402


def _attention(seed: int, size: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    attn = ie.Attention(48, 3, use_rel_pos=True, input_size=(size, size))
    with torch.no_grad():         # released SAMs learn these; zeros would hide a wrong bias
        attn.rel_pos_h.normal_(0, 0.5)
        attn.rel_pos_w.normal_(0, 0.5)
    return attn.eval()


@pytest.mark.parametrize("size", [7, 14])
def test_fused_attention_matches_segment_anything(size):
    original = _attention(1, size)
    fused = fuse_attention(copy.deepcopy(original))
    assert type(fused).__name__ == "FusedRelPosAttention"
    x = torch.randn(2, size, size, 48)
    with torch.no_grad():
        expected, got = original(x), fused(x)
        without_bias = copy.deepcopy(original)
        without_bias.rel_pos_h.zero_()
        moved = without_bias(x)
    assert got.shape == expected.shape == (2, size, size, 48)
    assert torch.allclose(got, expected, atol=1e-5), float((got - expected).abs().max())
    # the relative-position terms matter at this tolerance (the check could fail)
    assert float((moved - expected).abs().max()) > 1e-2


def test_bf16_copy_leaves_the_model_and_keeps_the_neck_float32():
    model = build_tiny_sam()
    before = {k: v.clone() for k, v in model.image_encoder.state_dict().items()}
    encoder = bf16_encoder(model.image_encoder)
    assert all(type(m) is not ie.Attention for m in encoder.modules()), "every attention fused"
    assert any(type(m) is ie.Attention for m in model.image_encoder.modules()), "original kept"
    after = model.image_encoder.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    dtypes = {name.split(".")[1]: p.dtype for name, p in encoder.named_parameters()}
    assert dtypes["blocks"] == torch.bfloat16 and dtypes["patch_embed"] == torch.bfloat16
    assert dtypes["neck"] == torch.float32


@pytest.mark.skipif(not bf16_supported(), reason="no bfloat16 support on this CPU")
def test_engine_bf16_embedding_uses_the_copy_and_agrees_with_float32():
    model = build_tiny_sam()
    engine = SamSegmenter("tiny", model=model, precision="fp32")
    frame, _ = next(moving_disc_frames(1, height=144, width=192))
    fp32 = engine.compute_embedding(frame, precision="fp32")
    bf16 = engine.compute_embedding(frame, precision="bf16")
    assert engine._bf16 is not None and bf16.precision == "bf16"
    assert bf16.features.dtype == np.float16 and bf16.features.shape == fp32.features.shape
    a, b = fp32.features.astype(np.float32), bf16.features.astype(np.float32)
    error = np.linalg.norm(a - b) / np.linalg.norm(a)
    assert 0 < error < 0.05, error          # bfloat16 rounding, not a different computation
    again = engine.compute_embedding(frame, precision="bf16")
    assert np.array_equal(again.features, bf16.features), "one copy, reused"
