"""Augmentation of the network input during training (`lgnm-train --augment`).

The input is the 112x112 ROI image of the HS-encoded flow (engines/features.py), stored
normalised as (pixel - 127.5) / 128. What varies in real footage and is not the
expression, expressed in that image:
- sensor noise and compression leave speckle in the flow: additive Gaussian noise on the
  pixel values, sigma drawn per sample from U(0, `noise_px`) (pixel units, 0..255);
- a hand, a frame edge or a failed flow region removes part of a ROI: with probability
  `cutout_p` a square of side U(`cutout_px`) pixels is set to 0 (the value of "no
  motion"), placed at random in the image.
Value gain (amplitude) is deliberately not augmented: the amplitude of the motion is what
tells a face's small jitter from an expression. Mirroring is not either: under a mirror
the flow's direction, i.e. the hue, changes too, so a pixel-wise flip is not a mirrored face.
Seeded by the caller's torch.Generator: the same seed gives the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augment:
    """Parameters of `augment_inputs` (pixel units of the 0..255 HS image)."""

    noise_px: float = 4.0
    cutout_p: float = 0.3
    cutout_px: tuple[int, int] = (8, 24)

    def __post_init__(self) -> None:
        if self.noise_px < 0:
            raise ValueError(f"noise_px: must be >= 0, got {self.noise_px}")
        if not 0 <= self.cutout_p <= 1:
            raise ValueError(f"cutout_p: must be in [0, 1], got {self.cutout_p}")
        lo, hi = self.cutout_px
        if not 1 <= lo <= hi <= 112:
            raise ValueError(f"cutout_px: must be 1 <= lo <= hi <= 112, got {self.cutout_px}")


def augment_inputs(x: torch.Tensor, aug: Augment, gen: torch.Generator) -> torch.Tensor:
    """A new (B, 3, H, W) float tensor: `x` (normalised network inputs, any device) with
    per-sample noise and cutout; `x` itself is left unchanged. Random numbers are drawn on
    the CPU from `gen`, so results do not depend on the device."""
    b, _, h, w = x.shape
    pixel = x.detach().float().cpu() * 128.0 + 127.5
    sigma = torch.rand(b, 1, 1, 1, generator=gen) * aug.noise_px
    pixel = pixel + torch.randn(pixel.shape, generator=gen) * sigma
    hit = torch.rand(b, generator=gen) < aug.cutout_p
    lo, hi = aug.cutout_px
    sides = torch.randint(lo, hi + 1, (b,), generator=gen)
    tops = torch.rand(b, generator=gen)
    lefts = torch.rand(b, generator=gen)
    for i in torch.nonzero(hit).flatten().tolist():
        s = int(sides[i])
        y0 = int(tops[i] * (h - s + 1))
        x0 = int(lefts[i] * (w - s + 1))
        pixel[i, :, y0 : y0 + s, x0 : x0 + s] = 0.0
    pixel = pixel.clamp_(0.0, 255.0)
    return ((pixel - 127.5) / 128.0).to(x.device)
