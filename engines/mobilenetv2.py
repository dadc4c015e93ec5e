"""MobileNetV2 feature extractor (width 1.0), written here because no CPU build of
torchvision is available in this environment.

Layout and initialisation follow the original paper / torchvision's `mobilenet_v2().features`
so that torchvision's ImageNet weights load by name (`engines.pretrained`, `lgnm-train --backbone-weights`).
A 112x112 input gives a (1280, 4, 4) feature map (five stride-2 stages: 112 -> 4).
"""

from __future__ import annotations

from torch import Tensor, nn

# (expansion t, output channels c, repeats n, first stride s) — the paper's Table 2.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
FEATURE_CHANNELS = 1280


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias, BN follows) + BatchNorm + ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 -> linear project 1x1, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


def mobilenet_v2_features() -> nn.Sequential:
    """The `features` part of MobileNetV2 (width 1.0): (N,3,H,W) -> (N,1280,H/32,W/32)."""
    cin = 32
    layers: list[nn.Module] = [ConvBNReLU6(3, cin, stride=2)]
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(ConvBNReLU6(cin, FEATURE_CHANNELS, kernel=1))
    features = nn.Sequential(*layers)
    _init_like_torchvision(features)
    return features


def _init_like_torchvision(module: nn.Module) -> None:
    # Same scheme as torchvision so that training from scratch behaves like the reference.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
