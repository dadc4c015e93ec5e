"""Training-input augmentation (tools/augment.py): what it changes and what it keeps."""

from __future__ import annotations

import pytest
import torch

from tools.augment import Augment, augment_inputs


def _batch(b: int = 16) -> torch.Tensor:
    # A normalised HS image: grey motion everywhere (no exact zeros, so a cutout is the
    # only source of them) with one bright block per sample.
    pixel = torch.full((b, 3, 112, 112), 100.0)
    pixel[:, :, 20:40, 30:60] = 200.0
    return (pixel - 127.5) / 128.0


def test_noise_and_cutout_stay_in_range_and_leave_the_input() -> None:
    x = _batch()
    before = x.clone()
    out = augment_inputs(x, Augment(noise_px=6.0, cutout_p=1.0, cutout_px=(16, 16)), torch.Generator().manual_seed(0))
    assert torch.equal(x, before)  # the stored batch is not modified in place
    assert out.shape == x.shape and out.dtype == torch.float32
    pixel = out * 128.0 + 127.5
    assert pixel.min() >= -1e-4 and pixel.max() <= 255.0 + 1e-4
    # every sample got one 16x16 cutout: exactly 256 pixels per channel are 0, in a square
    zeros = pixel.abs() < 1e-4
    assert bool((zeros.flatten(2).sum(-1) == 256).all())
    for sample in zeros[:, 0]:
        rows, cols = torch.nonzero(sample, as_tuple=True)
        assert int(rows.max() - rows.min()) == 15 and int(cols.max() - cols.min()) == 15
    # noise: pixels away from the black floor (where clamping hides it) moved
    block = pixel[:, :, 20:40, 30:60]
    assert float((block - 200.0).abs().mean()) > 0.1


def test_seeded_and_off_means_unchanged() -> None:
    x = _batch()
    aug = Augment()
    a = augment_inputs(x, aug, torch.Generator().manual_seed(3))
    b = augment_inputs(x, aug, torch.Generator().manual_seed(3))
    c = augment_inputs(x, aug, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    none = augment_inputs(x, Augment(noise_px=0.0, cutout_p=0.0), torch.Generator().manual_seed(3))
    torch.testing.assert_close(none, x)


@pytest.mark.parametrize("kw", [{"noise_px": -1.0}, {"cutout_p": 1.5}, {"cutout_px": (0, 4)}, {"cutout_px": (30, 20)}])
def test_bad_parameters_are_refused(kw: dict) -> None:
    with pytest.raises(ValueError):
        Augment(**kw)
