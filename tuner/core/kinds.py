"""What kind of model a user handed over, told without importing the frameworks.

``tuner.optimize`` returns a model of the kind it was given (a GraphDef for a GraphDef, a
ScriptModule for a ScriptModule), so that the user's own save call (``tf.train.write_graph``,
``torch.jit.save``) works on the result.
"""

from __future__ import annotations

from typing import Any

#: A TensorFlow ``GraphDef`` (``tf.compat.v1.GraphDef``).
GRAPHDEF = "graphdef"
#: A TorchScript module (``torch.jit.ScriptModule``).
TORCHSCRIPT = "torchscript"
#: Any other ``torch.nn.Module``.
NN_MODULE = "nn.Module"
#: Anything else (a ``torch.export`` program, a TF SavedModel path, a callable).
OTHER = "other"


def model_kind(model: Any) -> str:
    """The kind of ``model``: :data:`GRAPHDEF`, :data:`TORCHSCRIPT`, :data:`NN_MODULE` or :data:`OTHER`.

    Args:
        model: A user's model or an optimized one.

    Returns:
        The kind.
    """
    descriptor = getattr(type(model), "DESCRIPTOR", None)
    if getattr(descriptor, "full_name", None) == "tensorflow.GraphDef":
        return GRAPHDEF
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(model, torch.jit.ScriptModule):
            return TORCHSCRIPT
        if isinstance(model, torch.nn.Module):
            return NN_MODULE
    return OTHER


def fits(returned: Any, wanted: str) -> bool:
    """Whether ``returned`` can stand in for a model of kind ``wanted``.

    A ScriptModule is also an ``nn.Module``; a model of kind :data:`OTHER` takes any callable.

    Args:
        returned: A candidate's native model.
        wanted: The user's model kind.

    Returns:
        True when the user's own save and call code works on ``returned``.
    """
    kind = model_kind(returned)
    if wanted == NN_MODULE:
        return kind in (TORCHSCRIPT, NN_MODULE)
    if wanted == OTHER:
        return callable(returned)
    return kind == wanted


__all__ = ["GRAPHDEF", "NN_MODULE", "OTHER", "TORCHSCRIPT", "fits", "model_kind"]
