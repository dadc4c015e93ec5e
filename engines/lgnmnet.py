"""LGNMNet: MobileNetV2 features, a small neck to a 256-d embedding, and a MagFace head.

Training uses the MagFace margin logits plus its magnitude regulariser; inference uses
the plain scaled cosine logits, and the frame score is the softmax probability of class 1
("expression"), a continuous P(expression) rather than the authors' label x confidence.
MagFace's scale (64) makes that softmax nearly binary; a temperature T fitted on labelled
validation frames (temperature scaling, Guo et al. 2017, ICML: "On Calibration of Modern
Neural Networks"; `calibration.temperature`, `lgnm-calibrate --temperature fit`) divides
the logits before the softmax. T = 1 (the default) is the network as trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.mobilenetv2 import FEATURE_CHANNELS, mobilenet_v2_features

ROI_SIZE = 112
NECK_CHANNELS = 32
NECK_FLAT = NECK_CHANNELS * 4 * 4  # 512 for a 112x112 input
EMBEDDING_DIM = 256
EXPRESSION_CLASS = 1


@dataclass(frozen=True, slots=True)
class MagFaceConfig:
    """MagFace hyper-parameters as used by LGNMNet (margin_am is 0 and so not modelled)."""

    scale: float = 64.0
    l_a: float = 10.0
    u_a: float = 110.0
    l_margin: float = 0.45
    u_margin: float = 0.8
    lambda_g: float = 20.0


class MagFaceHead(nn.Module):
    """Cosine classifier with MagFace's magnitude-aware angular margin.

    Follows the MagFace paper / reference code: the embedding magnitude a = ||f|| is
    clamped to [l_a, u_a]; the margin m(a) grows linearly from l_margin to u_margin over
    that range; the regulariser is g(a) = a / u_a^2 + 1 / a (on the clamped a, so it gives
    no gradient outside [l_a, u_a], as in the reference).
    """

    def __init__(self, in_features: int = EMBEDDING_DIM, classes: int = 2, cfg: MagFaceConfig = MagFaceConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(classes, in_features))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, emb: Tensor) -> Tensor:
        """cos(theta) between each embedding and each class centre: (N, classes)."""
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1)).clamp(-1.0, 1.0)

    def logits(self, emb: Tensor) -> Tensor:
        """Plain scaled cosine logits used at inference."""
        return self.cfg.scale * self.cosine(emb)

    def magnitude(self, emb: Tensor) -> Tensor:
        return emb.norm(dim=1, keepdim=True).clamp(self.cfg.l_a, self.cfg.u_a)

    def margin(self, a: Tensor) -> Tensor:
        c = self.cfg
        return (c.u_margin - c.l_margin) / (c.u_a - c.l_a) * (a - c.l_a) + c.l_margin

    def regulariser(self, a: Tensor) -> Tensor:
        return a / (self.cfg.u_a**2) + 1.0 / a

    def margin_logits(self, emb: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(scaled logits with cos(theta + m(a)) on the target class, clamped magnitude a)."""
        a = self.magnitude(emb)
        m = self.margin(a)
        cos = self.cosine(emb)
        # clamp before sqrt: d/dx sqrt(x) is infinite at 0 (cos = +-1) and would give NaN.
        sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-7))
        cos_m = cos * torch.cos(m) - sin * torch.sin(m)
        # Reference "hard" variant: keep cos(theta + m) monotonic once theta + m passes pi.
        threshold = torch.cos(math.pi - m)
        mm = torch.sin(math.pi - m) * m
        cos_m = torch.where(cos > threshold, cos_m, cos - mm)
        one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        out = one_hot * cos_m + (1.0 - one_hot) * cos
        return self.cfg.scale * out, a


class LGNMNet(nn.Module):
    """(N,3,112,112) normalised ROI -> 256-d embedding; `predict_proba` -> P(expression)."""

    def __init__(self, dropout: float = 0.2, magface: MagFaceConfig = MagFaceConfig(),
                 temperature: float = 1.0) -> None:
        super().__init__()
        # Not a tensor: the weights file keeps it in its metadata (model_params), so the
        # state dict stays the network as trained.
        self.temperature = float(temperature)
        self.backbone = mobilenet_v2_features()
        self.neck_conv = nn.Conv2d(FEATURE_CHANNELS, NECK_CHANNELS, 1, bias=False)
        self.neck_bn = nn.BatchNorm2d(NECK_CHANNELS)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(NECK_FLAT, EMBEDDING_DIM)
        self.head = MagFaceHead(EMBEDDING_DIM, 2, magface)

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """Backbone + neck conv/BN/ReLU6: (N,3,112,112) -> (N,32,4,4). The convolutional
        bulk, which a mixed-precision backend may run in fp16."""
        return F.relu6(self.neck_bn(self.neck_conv(self.backbone(x))))

    def embed(self, f: Tensor) -> Tensor:
        """Flatten (512), L2-normalise, dropout, linear -> 256-d embedding."""
        f = F.normalize(torch.flatten(f, 1), dim=1)
        return self.fc(self.dropout(f))

    def logits(self, x: Tensor) -> Tensor:
        return self.head.logits(self(x))

    def predict_proba(self, x: Tensor) -> Tensor:
        """P(expression) per input: softmax over the plain scaled cosine logits / T, class 1."""
        return self.proba(self.logits(x))

    def proba(self, logits: Tensor) -> Tensor:
        """(N,) P(expression) from (N,2) plain scaled logits: softmax(logits / T), class 1."""
        scaled = logits if self.temperature == 1.0 else logits / self.temperature
        return torch.softmax(scaled, dim=1)[:, EXPRESSION_CLASS]

    def margin(self, x: Tensor) -> Tensor:
        """(N,) logit of class 1 minus class 0 at T = 1: P(expression) = sigmoid(margin / T)."""
        logits = self.logits(x)
        return logits[:, EXPRESSION_CLASS] - logits[:, 1 - EXPRESSION_CLASS]

    def magface_loss(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(CE on margin logits + lambda_g * mean g(a), plain scaled logits for metrics)."""
        margin_logits, a = self.head.margin_logits(embeddings, labels)
        loss = F.cross_entropy(margin_logits, labels) + self.head.cfg.lambda_g * self.head.regulariser(a).mean()
        return loss, self.head.logits(embeddings)


class ExpressionProbability(nn.Module):
    """Inference-only wrapper whose forward is `predict_proba` (for export and graphs)."""

    def __init__(self, net: LGNMNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, roi: Tensor) -> Tensor:
        return self.net.predict_proba(roi)
