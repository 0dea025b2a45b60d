from harness.platforms.model.platform import ModelParams, ModelPlatform

__all__ = ["ModelParams", "ModelPlatform"]
