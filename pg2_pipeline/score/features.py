"""FID features of the GFLA / CFLD lineages: torchvision's ImageNet Inception-v3 (pool, 2048-d).

No installable package ships those weights here, so a user who has them gives a TorchScript
file (e.g. ``torch.jit.script`` of torchvision's ``inception_v3(weights=IMAGENET1K_V1)`` with
``fc = Identity()``, taking (N, 3, 299, 299) and returning (N, 2048)); without it those
protocols' FID reads "unavailable". The input is prepared as GFLA's ``script/inception.py`` does
(CFLD and PCDMs copy it): [0, 1] images, ``F.interpolate(…, (299, 299), mode="bilinear")`` and
its ``normalize_input`` affine ``x · std / 0.5 + (mean − 0.5) / 0.5`` per channel with ImageNet's
mean and std.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from pg2_pipeline.evaluate.metrics import check_images

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionInception:
    """``features(uint8 (B, 3, H, W)) -> (B, 2048)`` with a user-supplied TorchScript network."""

    def __init__(self, path: str | Path, device: torch.device, batch_size: int = 32):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"--fid-weights: {path} is not a file")
        try:
            self.net = torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as exc:
            raise ValueError(f"--fid-weights: {path} is not a TorchScript file ({exc})") from None
        self.device, self.batch_size = device, batch_size
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.scale, self.shift = std / 0.5, (mean - 0.5) / 0.5
        self.dim = 2048
        # what the feature cache keys on: the network file and the preparation
        self.protocol = f"torchvision-inception-v3 sha256 {self.sha256}; [0,1]; torch bilinear 299; GFLA normalize"

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        check_images(images)
        out = []
        for start in range(0, len(images), self.batch_size):
            x = images[start : start + self.batch_size].to(self.device, torch.float32) / 255.0
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            features = self.net(x * self.scale + self.shift)
            if features.dim() != 2:
                raise ValueError(f"--fid-weights network returned {tuple(features.shape)}, expected (N, features)")
            out.append(features.float())
        return torch.cat(out) if out else torch.empty(0, 2048, device=self.device)
