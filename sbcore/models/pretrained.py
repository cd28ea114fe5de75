"""Weights shipped in assets/checkpoints, with their sha256 (filled in as models finish training)."""
from __future__ import annotations

import os
from pathlib import Path

from sbcore.models.registry import register_pretrained

ASSETS_DIR = Path(os.environ.get("SBCORE_ASSETS", Path(__file__).resolve().parents[2] / "assets"))
CHECKPOINT_DIR = ASSETS_DIR / "checkpoints"

_SHIPPED: dict[str, str] = {
    "resnet38.fmnist": "6827cf6b4e7a64e101f48a53ecfdf263bc7182557f86cdcaa5e9127287eef03b",
    "sb_resnet38.fmnist": "882cbb821d771a75ef45c72a0928e945abc6733d1038f5dd801bb33363c753bb",
    "nl_resnet38.fmnist": "fbe0bfff3dcc5f72d47c5f83e27def160ce425d961b712b5a9aac6efb28de79c",
    "sbnl_resnet38.fmnist": "8ac931ee4d88d0619617ca9eba692f6ad79eeabce9c450a03316809a5db88781",
    # global-context lab (issue 9): same-different canvases, seed 0; tools/ship_lab.py
    "lab_resnet14.samediff": "3268724d26f8fbea160722b757e9993060bc4ecc473fedb5b8412aec8f782164",
    "sb_lab_resnet14.samediff": "d9bb65c9875aef4436b7cefa7f23cf88559192d2db85c2ec1bebaa19783357bf",
    "nl_lab_resnet14.samediff": "eb2120800470240f9069d230ceb5fa7c5e6a2249019026b3a1b8956bfb67dacd",
    "sbnl_lab_resnet14.samediff": "1c05065dbc553b81bc931fd0a16084750b855b4ea50e78bea5a127ab4262376b",
}

for _name, _sha256 in _SHIPPED.items():
    register_pretrained(_name, CHECKPOINT_DIR / f"{_name.replace('.', '_')}.safetensors", _sha256)
