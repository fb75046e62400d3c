"""The synthetic twin: real file names, identities, cameras, splits and keypoints of Market-1501 or
DeepFashion In-shop, with synthetic people drawn in exactly the annotated poses.

``plan_twin`` chooses the images of a profile, ``render_twin_image`` draws one, ``build_twin``
writes the dataset folder in the real layout plus a contact sheet and a summary.
"""

from pg2_pipeline.data.twin.build import build_twin
from pg2_pipeline.data.twin.plan import TwinImage, plan_twin
from pg2_pipeline.data.twin.render import render_twin_image, render_twin_rgb

__all__ = ["TwinImage", "build_twin", "plan_twin", "render_twin_image", "render_twin_rgb"]
