"""Models: GLFNet (paper scale and a small CPU preset) and the STSTNet baseline.

``create_model(name, num_classes=3, in_chans=3, **overrides)`` builds any registered preset;
``list_models()`` names them.
"""

from glfnet.models import glfnet as _glfnet  # noqa: F401  (registers presets)
from glfnet.models import ststnet as _ststnet  # noqa: F401
from glfnet.models.registry import create_model, list_models, model_defaults

__all__ = ["create_model", "list_models", "model_defaults"]
