"""Which SDPA backend torch picks for 16-bit attention of a shape, and which can be captured in a CUDA graph.

    python experiments/sdpa_probe.py

For ViT-B/16's shapes (197 tokens) and BERT's (128): the dispatcher's choice on real and on fake
tensors (what ``torch.compile`` traces with), each fused backend's reasons to refuse (torch's debug
warnings), and whether each fused backend alone runs inside a CUDA-graph capture. On an H100 all
three fused backends captured these shapes: what sent ViT to the math backend in a graph was the
mask transformers built there (experiments/sdpa_args.py; experiments/results/2026-12-07-h100-gpu-profile.md).
"""

from __future__ import annotations

import warnings

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.attention import SDPBackend, sdpa_kernel

NAMES = {int(v.value): k for k, v in SDPBackend.__members__.items()}
CHECKS = ("can_use_cudnn_attention", "can_use_flash_attention", "can_use_efficient_attention")


def probe(shape: tuple[int, int, int, int]) -> None:
    """Print the choices for q = k = v of ``shape`` (batch, heads, tokens, head dim), laid out as transformers does."""
    b, h, n, d = shape
    q = torch.randn(b, n, h, d, device="cuda", dtype=torch.float16).transpose(1, 2)
    print(shape, "real:", NAMES[torch._fused_sdp_choice(q, q, q)], flush=True)
    with FakeTensorMode() as mode:
        fq = mode.from_tensor(q)
        try:
            print("  fake:", NAMES[torch._fused_sdp_choice(fq, fq, fq)], flush=True)
        except Exception as e:  # noqa: BLE001 - the answer is the error
            print("  fake: error", str(e)[:200], flush=True)
    params = torch.backends.cuda.SDPAParams(q, q, q, None, 0.0, False, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = [getattr(torch.backends.cuda, c)(params, True) for c in CHECKS]
    print("  cudnn/flash/efficient usable:", ok, flush=True)
    for w in caught:
        print("   ", str(w.message)[:220], flush=True)
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
        try:
            with sdpa_kernel([backend]):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
                torch.cuda.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    torch.nn.functional.scaled_dot_product_attention(q, q, q)
                graph.replay()
                torch.cuda.synchronize()
            print("  captured with", backend.name, flush=True)
        except Exception as e:  # noqa: BLE001 - the answer is the error
            print("  capture failed with", backend.name, str(e).splitlines()[0][:160], flush=True)


if __name__ == "__main__":
    for s in [(1, 12, 197, 64), (8, 12, 197, 64), (8, 12, 200, 64), (8, 12, 128, 64)]:
        probe(s)
