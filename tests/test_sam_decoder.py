"""endolite.segment.sam_decoder: SAM's mask decoder on token-major tensors gives what
segment-anything's ``model.mask_decoder`` gives, for points, boxes and a mask prompt, single and
multi-mask, and ``best_only`` keeps exactly the highest-IoU candidate."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from endolite.segment.sam import build_tiny_sam  # noqa: E402
from endolite.segment.sam_decoder import Decoder  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return build_tiny_sam(seed=3)


def _prompts(model, with_mask: bool, with_box: bool):
    size = model.image_encoder.img_size
    coords = torch.tensor([[[size * 0.3, size * 0.4], [size * 0.6, size * 0.2]]])
    labels = torch.tensor([[1, 0]])
    box = torch.tensor([[size * 0.2, size * 0.2, size * 0.7, size * 0.8]]) if with_box else None
    h, w = model.prompt_encoder.image_embedding_size
    mask = torch.randn(1, 1, 4 * h, 4 * w) if with_mask else None
    with torch.inference_mode():
        return model.prompt_encoder(points=(coords, labels), boxes=box, masks=mask)


@pytest.mark.parametrize("with_mask,with_box", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("multimask", [True, False])
def test_token_major_decoder_matches_segment_anything(model, with_mask, with_box, multimask):
    torch.manual_seed(7)
    c = model.prompt_encoder.embed_dim
    h, w = model.prompt_encoder.image_embedding_size
    features = torch.randn(1, c, h, w)
    sparse, dense = _prompts(model, with_mask, with_box)
    decoder = Decoder(model)
    with torch.inference_mode():
        expected, expected_iou = model.mask_decoder(
            image_embeddings=features, image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=multimask)
    masks, iou = decoder(decoder.tokens(features), sparse, dense, (h, w), multimask=multimask)
    k = 3 if multimask else 1
    assert masks.shape == expected.shape == (1, k, 4 * h, 4 * w) and iou.shape == (1, k)
    assert torch.allclose(masks, expected, atol=1e-5), float((masks - expected).abs().max())
    assert torch.allclose(iou, expected_iou, atol=1e-6)
    assert float(expected.std()) > 1e-3, "the logits vary: a wrong pixel order would show"

    best, best_iou = decoder(decoder.tokens(features), sparse, dense, (h, w), multimask=multimask,
                             best_only=True)
    pick = int(torch.argmax(expected_iou[0]))
    assert best.shape == (1, 1, 4 * h, 4 * w)
    assert torch.allclose(best[0, 0], expected[0, pick], atol=1e-5)
    assert float(best_iou[0, 0]) == pytest.approx(float(expected_iou[0, pick]), abs=1e-6)


def test_tokens_are_contiguous_row_major(model):
    c = model.prompt_encoder.embed_dim
    features = torch.arange(c * 2 * 3, dtype=torch.float16).reshape(c, 2, 3)
    tokens = Decoder(model).tokens(features)
    assert tokens.shape == (1, 6, c) and tokens.dtype == torch.float32 and tokens.is_contiguous()
    assert torch.equal(tokens[0, 4], features[:, 1, 1].float())      # grid (y=1, x=1) -> token 4
