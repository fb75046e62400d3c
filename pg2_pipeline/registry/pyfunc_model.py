"""The logged PG² generator, as an MLflow "model from code".

MLflow stores this file as the model's code (no cloudpickle of a Python object) together with
two folders of artifacts, ``stage1`` (G1's safetensors + JSON config) and ``stage2`` (G2's);
loading builds a :class:`~pg2_pipeline.models.pg2.PG2` from them (the package source is shipped
with the model). Nothing is unpickled.

Input (a dict of arrays; see the model signature):
    condition         uint8   (N, H, W, 3)  RGB person images at the model's size
    target_keypoints  float32 (N, 18, 2)    OpenPose-18 (y, x) in that frame, -1 = missing
Output:
    uint8 (N, H, W, 3)  the condition person in the target pose (G1 + G2 difference map)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np


class PG2Generator(mlflow.pyfunc.PythonModel):
    # MLflow checks predict()'s input type hint when the class is made and can validate lists,
    # DataFrames and single arrays, not a dict of arrays: it would warn on every load that the
    # hint is unsupported. The logged signature (a dict of tensors) describes and enforces the
    # input instead. This attribute is MLflow's own (private) switch, which its ChatModel uses;
    # mlflow is pinned, and tests/serve/test_generate_output.py fails if the warning comes back.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        import torch

        from pg2_pipeline.models.pg2 import PG2
        from pg2_pipeline.paths import StagePaths

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        stage1, stage2 = (StagePaths(Path(context.artifacts[name])) for name in ("stage1", "stage2"))
        self.pg2 = PG2.from_stage_folders(stage1, stage2, device)

    def predict(self, context, model_input: dict[str, np.ndarray], params: dict[str, Any] | None = None) -> np.ndarray:
        return self.pg2.generate(model_input["condition"], model_input["target_keypoints"])


mlflow.models.set_model(PG2Generator())
