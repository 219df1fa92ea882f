"""16-bit winners ship: autocast and fp32-island candidates export and pass the o2 rule in a fresh process."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import get_backend
from tuner.core.accuracy import accuracy_rule
from tuner.core.records import Candidate
from tuner.export.artifact import export_artifact
from tuner.export.verify import verify_in_subprocess
from tuner.runtime.fallback import FP32_FALLBACK

pytest.importorskip("transformers", reason="the real-model workloads need transformers: pip install -e '.[models]'")


@pytest.mark.parametrize("candidate", [
    Candidate("eager", precision="amp-bf16", options={FP32_FALLBACK: 0.05}),
    Candidate("inductor", "mark_dynamic", "amp-bf16", {FP32_FALLBACK: 0.05}),
    Candidate("torchscript", precision="bf16", options={FP32_FALLBACK: 0.2, "torchscript/method": "trace"}),
], ids=lambda c: c.backend)
def test_a_16_bit_candidate_exports_and_passes_the_o2_rule_when_reloaded(candidate: Candidate, tmp_path: Path) -> None:
    from tuner.workloads.loading import load_workload

    workload = load_workload("experiments.workloads.hf_bert:make_tiny", None, "cpu")
    built = get_backend(candidate.backend).build(workload, candidate).built
    assert built is not None
    export_artifact(built, workload, candidate, tmp_path, None)
    result = verify_in_subprocess(tmp_path, workload, accuracy_rule(None, "o2"), 1, 2)
    assert result["verified"] and 0 < result["reloaded_score"] < 0.02
