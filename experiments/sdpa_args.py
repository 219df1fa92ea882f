"""The arguments transformers' ViT passes to SDPA, and the backend chosen, in eager and inside a CUDA-graph capture."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend

from experiments.workloads import registry
from tuner.runtime.cuda_graphs import GraphedCall
from tuner.runtime.precision import apply_precision

NAMES = {int(v.value): k for k, v in SDPBackend.__members__.items()}
ORIGINAL = torch.nn.functional.scaled_dot_product_attention
SEEN: list[str] = []


def spy(q, k, v, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Record one call's arguments and the dispatcher's choice, then run it."""
    mask = args[0] if args else kwargs.get("attn_mask")
    choice = NAMES[torch._fused_sdp_choice(q, k, v, *args, **kwargs)]
    given = None if mask is None else (mask.dtype, tuple(mask.shape))
    SEEN.append(f"q {tuple(q.shape)} {q.dtype} stride {q.stride()} mask {given} args {args[1:] if args else ()} "
                f"kwargs {sorted(kwargs)} capturing {torch.cuda.is_current_stream_capturing()} -> {choice}")
    return ORIGINAL(q, k, v, *args, **kwargs)


if __name__ == "__main__":
    torch.nn.functional.scaled_dot_product_attention = spy
    workload = registry.load("hf_vit", "full", "gpu", None)
    model = apply_precision(workload.model, "fp16", ())
    sample = workload.samples[0]
    with torch.no_grad():
        model(*sample)
        print("eager:", SEEN[0], flush=True)
        SEEN.clear()
        GraphedCall(model)(*sample)
        for line in sorted(set(SEEN)):
            print("graphed:", line, flush=True)
