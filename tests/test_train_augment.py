"""Training augmentations (endolite.train.data): the matrix hue shift keeps greys, is the
identity at zero, moves hues the right way round, and the whole transform yields normalised
float32 images of the configured size."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from endolite.train.data import HueRotate, hue_matrix, make_transform  # noqa: E402


def test_hue_matrix_identity_greys_and_direction():
    assert torch.allclose(hue_matrix(0.0), torch.eye(3), atol=1e-3)
    grey = torch.tensor([[90.0], [90.0], [90.0]])
    assert torch.allclose(hue_matrix(0.13) @ grey, grey, atol=0.1), "rows sum to 1"
    red = torch.tensor([[200.0], [30.0], [30.0]])
    third = hue_matrix(1 / 3) @ red            # a third of the wheel: red moves towards green
    assert int(third.argmax()) == 1
    back = hue_matrix(-1 / 3) @ red            # the other way: towards blue
    assert int(back.argmax()) == 2


def test_hue_rotate_keeps_uint8_shape_and_stays_close_for_small_shifts():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8)
    out = HueRotate(0.02)(image)
    assert out.dtype == torch.uint8 and out.shape == image.shape
    diff = (out.int() - image.int()).abs().float().mean()
    assert 0 < diff < 25, diff
    grey = torch.full((3, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(HueRotate(0.02)(grey), grey)


@pytest.mark.parametrize("augment", [True, False])
def test_transform_output(augment):
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, 60, 80), dtype=torch.uint8)
    out = make_transform(32, augment=augment)(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert -3 < float(out.min()) and float(out.max()) < 3, "ImageNet-normalised"
