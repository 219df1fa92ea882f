from __future__ import annotations

import dataclasses

import torch
from torch import nn

from backends import get_backend
from tuner.core.accuracy import parse_accuracy
from tuner.core.records import Candidate
from tuner.runtime.correctness import check_outputs
from tuner.runtime.errors import rel_l2
from tuner.runtime.fallback import FP32_FALLBACK, fp32_modules, local_errors
from tuner.runtime.precision import AutocastWrapper, CastWrapper, Fp32Island, apply_precision
from tuner.workloads.loading import make_workload


class Cancelling(nn.Module):
    """A well-behaved layer, then one whose output is the small difference of large terms.

    In bf16 the second layer's weights 1000 and 1000.5 round to the same number, so its own
    output (0.5 per unit input in fp32) is lost: its local error is about 1, the first layer's
    a few 1e-3.
    """

    def __init__(self) -> None:
        super().__init__()
        self.plain = nn.Linear(4, 2)
        self.cancel = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.plain.weight.copy_(torch.tensor([[0.5, 0.25, 0.1, 0.2]] * 2))
            self.plain.bias.zero_()
            self.cancel.weight.copy_(torch.tensor([[1000.5, -1000.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cancel(self.plain(x))


def samples():
    return [(torch.rand(3, 4) + 1.0,) for _ in range(2)]


def test_autocast_keeps_weights_and_returns_fp32():
    model = Cancelling().eval()
    wrapped = apply_precision(model, "amp-bf16")
    assert isinstance(wrapped, AutocastWrapper) and wrapped.model.plain.weight.dtype == torch.float32
    out = wrapped(*samples()[0])
    assert out.dtype == torch.float32
    cast = apply_precision(model, "bf16")
    assert isinstance(cast, CastWrapper) and cast.model.plain.weight.dtype == torch.bfloat16
    assert model.plain.weight.dtype == torch.float32  # the user's model is untouched


def test_the_module_that_loses_the_result_ranks_first_and_keeping_it_in_fp32_repairs_it():
    model, data = Cancelling().eval(), samples()
    errors = local_errors(model, data, "bf16")
    assert set(errors) == {"plain", "cancel"} and errors["cancel"] > 0.1 > errors["plain"]
    ref = [(model(*s),) for s in data]
    plain = apply_precision(model, "bf16")
    kept = apply_precision(model, "bf16", ("cancel",))
    assert isinstance(kept.model.cancel, Fp32Island) and kept.model.cancel.module.weight.dtype == torch.float32
    with torch.no_grad():
        err_plain = max(rel_l2(plain(*s), r[0]) for s, r in zip(data, ref, strict=True))
        err_kept = max(rel_l2(kept(*s), r[0]) for s, r in zip(data, ref, strict=True))
    assert err_kept < err_plain / 10


def test_a_candidates_fallback_share_picks_the_worst_modules_and_is_judged_by_the_rule():
    workload = make_workload(Cancelling().eval(), samples(), "cpu", name="cancel")
    assert fp32_modules(workload, "bf16", 0.0) == ()
    assert fp32_modules(workload, "bf16", 0.05) == ("cancel",)  # at least one
    rule = parse_accuracy("rel-l2:0.02")
    verdicts = {}
    for share in (0.0, 0.5):
        cand = Candidate("eager", precision="bf16", options={FP32_FALLBACK: share})
        backend = get_backend("eager")
        built = backend.build(workload, cand).built
        m = backend.measure(built, workload, dataclasses.replace(_config(), repeats=1))
        verdicts[share] = check_outputs(m.outputs, workload.reference, rule)
    assert not verdicts[0.0].ok and verdicts[0.5].ok


def _config():
    from tuner.core.records import MeasureConfig

    return MeasureConfig(warmup=1, repeats=1, quick_repeats=1, gpu_warmup_s=0.0)


def test_the_wrappers_trace_whole_in_dynamo_and_export():
    # Dynamo refused a generator in an earlier Fp32Island (seen on the H100 as a build failure).
    model, x = Cancelling().eval(), samples()[0]
    for precision, kept in (("amp-bf16", ("cancel",)), ("bf16", ("cancel",)), ("amp-bf16", ())):
        wrapped = apply_precision(model, precision, kept)
        compiled = torch.compile(wrapped, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(compiled(*x), wrapped(*x))
        torch.testing.assert_close(torch.export.export(wrapped, x).module()(*x), wrapped(*x))


def test_torchscript_records_autocast_and_fp32_islands_by_tracing():
    # Scripting keeps neither (seen on an H100: a scripted fp32 island failed to build), so a
    # candidate that asks for script is traced; the island then repairs the cancelling layer.
    workload = make_workload(Cancelling().eval(), samples(), "cpu", name="cancel")
    rule = parse_accuracy("rel-l2:0.02")
    backend = get_backend("torchscript")
    scores = {}
    for precision, share in (("amp-bf16", 0.0), ("amp-bf16", 0.5), ("bf16", 0.5)):
        cand = Candidate("torchscript", precision=precision,
                         options={FP32_FALLBACK: share, "torchscript/method": "script"})
        built = backend.build(workload, cand).built
        assert built is not None, cand
        scores[(precision, share)] = check_outputs(backend.measure(built, workload, _config()).outputs,
                                                   workload.reference, rule).score
    assert scores[("amp-bf16", 0.0)] > 0.5 > 0.02 > scores[("amp-bf16", 0.5)]
    assert scores[("bf16", 0.5)] < 0.02
