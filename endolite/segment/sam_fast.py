"""A bfloat16 copy of SAM's image encoder with fused relative-position attention.

Why: on a 2-core Xeon with AMX, segment-anything's vit_b encoder under
``torch.autocast("cpu", dtype=torch.bfloat16)`` took 2.9 s per embedding against 8.7 s for
plain float32 (0.33x).  A profile of the bfloat16 run showed 35 % of it in ``aten::add``: each
global-attention block adds the decomposed relative-position terms to its
``(heads, 4096, 4096)`` attention map in two full passes that allocate two new maps, and
autocast re-casts every weight on every call.  This module:

- keeps the encoder's weights in bfloat16 once (a copy: the float32 model stays as it is, for
  float32 embeddings and for the calibration that compares the two), and
- computes ``q·k * scale + rel_h[q, kh] + rel_w[q, kw]`` as ONE matrix product by appending the
  query's relative-position terms to the query and one-hot key rows / columns to the key:
  ``[q * scale, rel_h, rel_w] · [k, onehot(kh), onehot(kw)]``.  Mathematically the same sum
  (float32 results agree to rounding), with no extra pass over the attention map;
- runs the neck (two convolutions and LayerNorm2d over the 64 x 64 grid) in float32, so the
  embedding every click decodes from is normalised at full precision.

Measured with bench/sam_click.py (``auto_over_plain_fp32``).  Whether bfloat16 is used at all
is still decided per machine by :mod:`endolite.segment.precision` (masks must agree).
"""

from __future__ import annotations

import copy
from typing import Any


def _fused_attention_class() -> type:
    import torch
    from segment_anything.modeling import image_encoder as ie

    class FusedRelPosAttention(ie.Attention):
        """``ie.Attention`` whose relative-position bias is folded into the q·k product.

        Input / output ``(B, H, W, C)`` (channels last), any float dtype."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch, height, width, _ = x.shape
            heads = self.num_heads
            n = batch * heads
            qkv = self.qkv(x).reshape(batch, height * width, 3, heads, -1).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.reshape(3, n, height * width, -1).unbind(0)     # (B*heads, HW, c)
            if self.use_rel_pos:
                rh = ie.get_rel_pos(height, height, self.rel_pos_h).to(q.dtype)   # (H, H, c)
                rw = ie.get_rel_pos(width, width, self.rel_pos_w).to(q.dtype)     # (W, W, c)
                grid_q = q.reshape(n, height, width, -1)
                rel_h = torch.einsum("bhwc,hkc->bhwk", grid_q, rh).reshape(n, height * width, height)
                rel_w = torch.einsum("bhwc,wkc->bhwk", grid_q, rw).reshape(n, height * width, width)
                # key (kh, kw) in row-major order -> one-hot of kh and of kw
                one_h = torch.eye(height, dtype=q.dtype).repeat_interleave(width, 0)   # (HW, H)
                one_w = torch.eye(width, dtype=q.dtype).repeat(height, 1)              # (HW, W)
                q = torch.cat([q * self.scale, rel_h, rel_w], -1)
                k = torch.cat([k, one_h.expand(n, -1, -1), one_w.expand(n, -1, -1)], -1)
                attn = q @ k.transpose(-2, -1)
            else:
                attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            out = (attn @ v).view(batch, heads, height, width, -1).permute(0, 2, 3, 1, 4)
            return self.proj(out.reshape(batch, height, width, -1))

    return FusedRelPosAttention


def fuse_attention(module: Any) -> Any:
    """Swap every ``segment_anything`` ``Attention`` inside ``module`` for the fused version
    (in place; same parameters, same results up to rounding).  Returns ``module``."""
    from segment_anything.modeling import image_encoder as ie

    fused = _fused_attention_class()
    for sub in module.modules():
        if type(sub) is ie.Attention:
            sub.__class__ = fused
    return module


def bf16_encoder(encoder: Any) -> Any:
    """A bfloat16 copy of SAM's ``ImageEncoderViT`` (the original is not changed): patch
    embedding and transformer blocks in bfloat16 with fused attention, the neck in float32.
    Call it with a ``(1, 3, S, S)`` preprocessed tensor of any float dtype; returns the
    ``(1, C, S/16, S/16) float32`` embedding.  Costs one bfloat16 copy of the weights (vit_b:
    ~180 MB)."""
    import torch

    class Float32Neck(torch.nn.Module):
        def __init__(self, neck: torch.nn.Module) -> None:
            super().__init__()
            self.inner = neck

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.float())

    class Bf16Input(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.to(torch.bfloat16))

    copied = copy.deepcopy(encoder)
    neck = copied.neck                      # kept in float32: taken out before the cast
    copied.neck = torch.nn.Identity()
    copied.to(torch.bfloat16)
    fuse_attention(copied)
    copied.neck = Float32Neck(neck)
    return Bf16Input(copied).eval()
