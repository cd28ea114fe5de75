"""Weights shipped in assets/checkpoints, with their sha256 (filled in as models finish training)."""
from __future__ import annotations

import os
from pathlib import Path

from sbcore.models.registry import register_pretrained

ASSETS_DIR = Path(os.environ.get("SBCORE_ASSETS", Path(__file__).resolve().parents[2] / "assets"))
CHECKPOINT_DIR = ASSETS_DIR / "checkpoints"

_SHIPPED: dict[str, str] = {
    "resnet38.fmnist": "0cf601927ae68b056a179ce74f572de43b543f8e87c7a9e85be2ee28f2277999",
    "sb_resnet38.fmnist": "dc7a2bb1fd83933795c189618e4411b6774b5df6efdd99ddb1bdb4206cb24ffe",
    "nl_resnet38.fmnist": "4f278fe2d067c7d5d973a6a95151983ff0c224882ca78a4f6fe9fe8982a44bf5",
    "sbnl_resnet38.fmnist": "0751d761fcd9a13d9e2973a70bbdaaafe68fb170b60237c9ecafca31e458dcb5",
}

for _name, _sha256 in _SHIPPED.items():
    register_pretrained(_name, CHECKPOINT_DIR / f"{_name.replace('.', '_')}.safetensors", _sha256)
