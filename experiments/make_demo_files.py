"""Write the demo workload as files, as a user would bring their own model.

    python experiments/make_demo_files.py OUT_DIR

writes ``OUT_DIR/decoder.pt`` (TorchScript, like the seed's ``orig_decoder_v2.pt``),
``OUT_DIR/decoder.pt2`` (a ``torch.export`` program with a symbolic batch dim) and
``OUT_DIR/batches.pt`` (the test data: a list of input tuples), so that

    tune --model OUT_DIR/decoder.pt --test-data OUT_DIR/batches.pt --trials 50
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tuner.workloads.demo import make_demo


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model, data = make_demo()
    torch.jit.save(torch.jit.script(model), out / "decoder.pt")
    batch = torch.export.Dim("batch", min=1)
    example = max(data, key=lambda s: s[0].shape[0])
    program = torch.export.export(model, example, dynamic_shapes=tuple({0: batch} for _ in example))
    torch.export.save(program, out / "decoder.pt2")
    torch.save(data, out / "batches.pt")
    print(f"wrote {out}/decoder.pt, decoder.pt2 and batches.pt ({len(data)} samples)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-files"))
