"""Models: GLFNet (paper scale and small CPU presets) and two baselines: STSTNet and a plain CNN.

``create_model(name, num_classes=3, in_chans=3, **overrides)`` builds any registered preset;
``list_models()`` names them.
"""

from glfnet.models import glfnet as _glfnet  # noqa: F401  (registers presets)
from glfnet.models import plaincnn as _plaincnn  # noqa: F401
from glfnet.models import ststnet as _ststnet  # noqa: F401
from glfnet.models.registry import create_model, list_models, model_defaults

__all__ = ["create_model", "list_models", "model_defaults"]
