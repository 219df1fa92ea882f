"""Dimension ``channels_last``: convolution weights in channels-last (NHWC) memory format, on the GPU.

cuDNN's fp16/bf16 convolutions run on tensor cores in NHWC; given NCHW tensors they transpose
around each convolution or pick slower kernels. A model whose weights are channels-last makes
each convolution's output channels-last too (torch follows the weight's format), so the whole
convolution stack runs in NHWC without converting the inputs. Inductor chooses its own layouts
(its layout optimization), but it starts from the weights it is given, so the choice is offered
to it as well. It is applied to the model before the backend builds it
(:func:`tuner.runtime.models.in_precision`), so the artifacts carry it: an exported program's and
a trace's weights keep their strides. Left out on the CPU (where oneDNN chooses its own
layouts), for models without convolutions, and in studies created before it existed
(:attr:`~search_space.base.SpaceContext.weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext, torch_on_gpu
from tuner.runtime.models import CHANNELS_LAST


class ChannelsLastDimension(Dimension):
    """``layout/channels_last`` (off, on) for eager, TorchScript and Inductor on the GPU."""

    name = "channels_last"
    order = 44

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """NCHW as given (torch's default) or channels-last weights; only for convolution models on the GPU."""
        if not torch_on_gpu(backend, ctx) or not ctx.convolutions or not ctx.weights:
            return ()
        return (Choice(CHANNELS_LAST, (False, True),
                       "hold convolution weights channels-last (NHWC): convolutions run in NHWC"),)
