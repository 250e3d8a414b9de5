"""Building SAM models: from a local checkpoint (or random weights), and a tiny one for tests.

Nothing here downloads anything: checkpoints are only read from a local path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from endolite.errors import InvalidInput

MODEL_TYPES = ("vit_b", "vit_l", "vit_h")


def load_sam(model_type: str, checkpoint: str | os.PathLike[str] | None) -> Any:
    """A SAM model in eval mode: ``checkpoint`` read from disk, or random weights when None."""
    import torch
    from segment_anything import sam_model_registry

    if model_type not in MODEL_TYPES:
        raise InvalidInput(f"SAM model type {model_type!r}: use one of {MODEL_TYPES}")
    if checkpoint is None:
        model = sam_model_registry[model_type]()
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise InvalidInput(f"SAM checkpoint {path} does not exist")
        model = sam_model_registry[model_type]()
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InvalidInput(f"{path.name} is not a SAM {model_type} checkpoint "
                               f"(name the file after its model: sam_vit_b/l/h_*.pth): {exc}") from exc
    return model.eval()


def build_tiny_sam(seed: int = 0) -> Any:
    """A tiny randomly initialised SAM for tests: 256 px input, patch 16 -> 16 x 16 x 32
    embedding, 2 encoder blocks of width 64, prompt dim 32, low-res masks 64 x 64."""
    from functools import partial

    import torch
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)

    torch.manual_seed(seed)
    img_size, patch, dim = 256, 16, 32
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size, patch_size=patch, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2,
            out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=4, global_attn_indexes=(1,)),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(img_size // patch, img_size // patch),
            input_image_size=(img_size, img_size), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=32),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return model.eval()
