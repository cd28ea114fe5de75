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
    "lab_resnet14.samediff": "376fdb6bd04439b52ff1247da4d7f2e3162608120186e646d38e197d5a7cae5a",
    "sb_lab_resnet14.samediff": "cf390957fb4b74f642bbfe4c1d02f052a64620bf632483d06c92e362c8ffe908",
    "nl_lab_resnet14.samediff": "8bd7e7c0e5f4aa6666875d5c2a01fcd85dd3d716ea449bc31c2cde4998411b1f",
    "sbnl_lab_resnet14.samediff": "d4593ef30cf9a694237ed78a1345aaed83de8aeeba9bed048ad86c310535579f",
    # seeds 1 and 2 of the lab models, same recipe (issue 24); tools/ship_lab.py
    "lab_resnet14.samediff-s1": "dafc7ae1f496b392a2abb839b9d606d6da7bae75a46bd4701b9372100902237c",
    "lab_resnet14.samediff-s2": "06b0474c9bbc29fe0acd92ec1737a05ec61cb2e66f7707234138c058662ff85c",
    "sb_lab_resnet14.samediff-s1": "47bf8e51c51d9aa43db102ccd36ecc2fe94ed4cd28fa35a44ce3eb5e06677652",
    "sb_lab_resnet14.samediff-s2": "a1113e9c59a148045e5d38d33e29248afe10747a8e69212e34dae41aa3d54d4e",
    "nl_lab_resnet14.samediff-s1": "be774681657e1d77a42c50e3fb8c2d18565a637e710d9dd8412013818cd4949e",
    "nl_lab_resnet14.samediff-s2": "ddcb4949604de2992238a69cf4714ee9668644fb63e1d6661581c77937bb500e",
    "sbnl_lab_resnet14.samediff-s1": "40ba4ba59eb5cc884801f998c20bbee7cc0c2012a3785ad3e9383cc11a87225a",
    "sbnl_lab_resnet14.samediff-s2": "cf1e9486563d417c003e16550dc13a18968b1f99ce91a623acb962b86fa0328d",
}

for _name, _sha256 in _SHIPPED.items():
    register_pretrained(_name, CHECKPOINT_DIR / f"{_name.replace('.', '_')}.safetensors", _sha256)
