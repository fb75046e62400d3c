"""The pose layer: one keypoint representation, extraction backends, pose maps and masks."""
