"""The logged PG² generator, as an MLflow "model from code".

MLflow stores this file as the model's code (no cloudpickle of a Python object) together with
the safetensors weights and JSON configs of G1 and G2; loading builds the networks from
``pg2_pipeline.models`` (shipped with the model as source) and reads the weights with
safetensors. Nothing is unpickled.

Input (a dict of arrays; see the model signature):
    condition         uint8   (N, H, W, 3)  RGB person images at the model's size
    target_keypoints  float32 (N, 18, 2)    OpenPose-18 (y, x) in that frame, -1 = missing
Output:
    uint8 (N, H, W, 3)  the condition person in the target pose (G1 + G2 difference map)
"""

from __future__ import annotations

import json

import mlflow
import numpy as np


class PG2Generator(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import torch
        from safetensors.torch import load_file

        from pg2_pipeline.models import build_generator

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.models = {}
        for name in ("g1", "g2"):
            config = json.loads(open(context.artifacts[f"{name}_config"]).read())
            model = build_generator(name, **config)
            model.load_state_dict(load_file(context.artifacts[f"{name}_weights"], device=str(self.device)))
            self.models[name] = model.to(self.device).eval()
        self.height, self.width = config["height"], config["width"]

    def predict(self, context, model_input, params=None):
        import torch

        from pg2_pipeline.pose.maps import pose_maps, to_network

        condition = np.asarray(model_input["condition"])
        keypoints = np.asarray(model_input["target_keypoints"], dtype=np.float32)
        n = condition.shape[0]
        if condition.shape[1:] != (self.height, self.width, 3) or condition.dtype != np.uint8:
            raise ValueError(f"condition must be uint8 (N, {self.height}, {self.width}, 3), got {condition.dtype} {condition.shape}")
        if keypoints.shape != (n, 18, 2):
            raise ValueError(f"target_keypoints must be float32 (N, 18, 2) matching condition, got {keypoints.shape}")
        with torch.inference_mode():
            image = torch.from_numpy(condition).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
            pose = to_network(pose_maps(torch.from_numpy(keypoints).to(self.device), self.height, self.width))
            coarse = self.models["g1"](image, pose)
            refined = coarse + self.models["g2"](coarse, image)  # I_B' = G1 + difference map
            out = refined.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return out.permute(0, 2, 3, 1).cpu().numpy()


mlflow.models.set_model(PG2Generator())
