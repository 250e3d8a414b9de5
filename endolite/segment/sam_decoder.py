"""SAM's mask decoder run on token-major (channels-last) tensors: the same maths, about half
the time of ``model.mask_decoder`` for one click on one CPU thread.

segment-anything hands the decoder the image embedding as ``(1, C, h, w)`` and flattens it to
``(1, h*w, C)`` with a permute, so every add inside its two-way transformer (image tokens plus
their positional encoding, seven of them per click) runs over a strided view, and its output
upscaling (two 2x2 / stride-2 transposed convolutions with LayerNorm2d and GELU) reorders
memory around each convolution.  A profile of one vit_b click (1 thread, 0.135 s) put ~30 ms in
those strided adds, ~23 ms in the two convolutions and ~30 ms in layout copies.

Here the embedding (:meth:`Decoder.tokens`, cached by the engine per frame) and the positional
encoding are kept as contiguous ``(1, h*w, C)`` tokens, the transformer blocks of the model are
called on them unchanged, and each transposed convolution with kernel = stride = 2 is written as
what it is, one matrix product per input pixel: ``(pixels, C_in) @ (C_in, 2*2*C_out)``.  The
sub-pixel order is kept (rows ``(y, x, i, j)``) through LayerNorm and GELU, which act per pixel,
and undone once on the final single-channel masks: output pixel ``(4y + 2i + k, 4x + 2j + l)``.
With ``best_only`` the IoU head runs first and only the best mask's hypernetwork product is made.

Results equal ``model.mask_decoder`` up to float32 rounding (tests/test_sam_decoder.py).
"""

from __future__ import annotations

from typing import Any


class Decoder:
    """Runs ``model.mask_decoder`` (a segment-anything ``Sam``) on token-major tensors.

    Construct once per model (weights are rearranged once; they must not change afterwards)."""

    def __init__(self, model: Any) -> None:
        import torch

        decoder = model.mask_decoder
        self.model = model
        self.decoder = decoder
        up = list(decoder.output_upscaling)   # ConvT(C, C/4), LayerNorm2d, act, ConvT(C/4, C/8), act
        if len(up) != 5 or any(getattr(up[i], "kernel_size", (2, 2)) != (2, 2) for i in (0, 3)):
            raise ValueError("unexpected SAM output_upscaling layout")
        self._act1, self._act2 = up[2], up[4]
        self._norm = up[1]
        with torch.inference_mode():
            self._w1, self._b1 = self._as_matrix(up[0])
            self._w2, self._b2 = self._as_matrix(up[3])
        self._pe: Any = None

    @staticmethod
    def _as_matrix(conv: Any) -> tuple[Any, Any]:
        """A 2x2 / stride-2 ConvTranspose2d as ``(C_in, 4*C_out)`` weights and ``(4*C_out,)``
        bias, columns ordered ``(i, j, c_out)`` for output pixel ``(2y + i, 2x + j)``."""
        if tuple(conv.stride) != (2, 2) or tuple(conv.padding) != (0, 0):
            raise ValueError("SAM output upscaling is expected to be 2x2 stride 2")
        weight = conv.weight.detach().float()                       # (C_in, C_out, 2, 2)
        c_in, c_out = weight.shape[:2]
        matrix = weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out).contiguous()
        bias = conv.bias.detach().float().repeat(4)                 # (i, j, c_out) order
        return matrix, bias

    def tokens(self, features: Any) -> Any:
        """``(1, C, h, w)`` or ``(C, h, w)`` float image embedding -> ``(1, h*w, C) float32``
        contiguous tokens (row-major over the grid)."""
        import torch

        if features.ndim == 3:
            features = features[None]
        return features.float().flatten(2).transpose(1, 2).contiguous(memory_format=torch.contiguous_format)

    def positional(self) -> Any:
        """The dense positional encoding as ``(1, h*w, C)`` tokens (fixed: computed once)."""
        if self._pe is None:
            import torch

            with torch.inference_mode():
                self._pe = self.tokens(self.model.prompt_encoder.get_dense_pe())
        return self._pe

    def __call__(self, tokens: Any, sparse: Any, dense: Any, grid: tuple[int, int], *,
                 multimask: bool = True, best_only: bool = False) -> tuple[Any, Any]:
        """Low-res mask logits ``(1, K, 4h, 4w) float32`` and IoU predictions ``(1, K)`` as
        ``model.mask_decoder(...)`` returns them (K = 3 with ``multimask``, else 1; 1 with
        ``best_only``: the highest predicted IoU of those K).  ``tokens``: :meth:`tokens` of the
        frame's embedding; ``sparse`` / ``dense``: the prompt encoder's outputs for one prompt;
        ``grid``: the embedding's ``(h, w)``."""
        import torch
        import torch.nn.functional as F

        d = self.decoder
        transformer = d.transformer
        height, width = grid
        with torch.inference_mode():
            output_tokens = torch.cat([d.iou_token.weight, d.mask_tokens.weight], dim=0)[None]
            points = torch.cat((output_tokens, sparse), dim=1)                # (1, T, C)
            keys = tokens + dense.flatten(2).transpose(1, 2)                  # (1, hw, C)
            pe = self.positional()
            queries = points
            for layer in transformer.layers:
                queries, keys = layer(queries=queries, keys=keys, query_pe=points, key_pe=pe)
            attn = transformer.final_attn_token_to_image(q=queries + points, k=keys + pe, v=keys)
            queries = transformer.norm_final_attn(queries + attn)
            iou = d.iou_prediction_head(queries[:, 0, :])                     # (1, 1 + n)
            first = 1 if multimask else 0
            chosen = list(range(first, d.num_mask_tokens if multimask else 1))
            if best_only:
                chosen = [chosen[int(torch.argmax(iou[0, chosen]))]]
            # upscaling: per-pixel matrix products, sub-pixel order (y, x, i, j[, k, l])
            c1 = self._w1.shape[1] // 4
            up = torch.addmm(self._b1, keys[0], self._w1)                     # (hw, 4*c1)
            up = up.view(-1, c1)                                              # rows (y, x, i, j)
            up = self._act1(F.layer_norm(up, (c1,), self._norm.weight, self._norm.bias,
                                         self._norm.eps))
            c2 = self._w2.shape[1] // 4
            up = self._act2(torch.addmm(self._b2, up, self._w2).view(-1, c2))  # rows (y,x,i,j,k,l)
            hyper = torch.stack([d.output_hypernetworks_mlps[i](queries[0, 1 + i, :])
                                 for i in chosen], dim=1)                    # (c2, K)
            masks = (up @ hyper).view(height, width, 2, 2, 2, 2, len(chosen))
            masks = masks.permute(6, 0, 2, 4, 1, 3, 5).reshape(1, len(chosen), 4 * height, 4 * width)
            return masks, iou[:, chosen]
