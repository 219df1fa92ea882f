"""The peer rows per level: o1's as they were, o2's 16-bit ones after them, each a tuner candidate."""

from __future__ import annotations

from experiments.peers import NAMES, O2_NAMES, names_for, peers_for


def test_o1_rows_are_the_fp32_peers() -> None:
    assert names_for("o1") == NAMES
    peers = {p.name: p for p in peers_for("torch", "cpu", "o1")}
    assert list(peers) == list(NAMES)
    assert all(p.candidate.precision == "fp32" for p in peers.values() if p.candidate is not None)


def test_o2_adds_the_16_bit_peers_after_the_fp32_ones() -> None:
    assert names_for("o2") == NAMES + O2_NAMES
    peers = {p.name: p for p in peers_for("torch", "cpu", "o2")}
    assert list(peers) == list(NAMES + O2_NAMES)
    cand = {name: p.candidate for name, p in peers.items() if p.candidate is not None}
    assert cand["eager"].precision == "fp32"  # the baseline of "vs eager" stays fp32 eager
    assert (cand["eager autocast fp16"].precision, cand["eager autocast bf16"].precision) == ("amp-fp16", "amp-bf16")
    assert cand["eager .half()"].precision == "fp16"
    for mode in ("default", "reduce-overhead", "max-autotune-no-cudagraphs"):
        half, amp = cand[f"torch.compile {mode} .half()"], cand[f"torch.compile {mode} autocast fp16"]
        assert (half.backend, half.precision, half.option("mode")) == ("inductor", "fp16", mode)
        assert (amp.backend, amp.precision, amp.option("mode")) == ("inductor", "amp-fp16", mode)
    ts = cand["TorchScript .half() trace+freeze"]
    assert (ts.backend, ts.precision) == ("torchscript", "fp16")
    assert (ts.option("method"), ts.option("freeze")) == ("trace", True)
    for name, precision in (("TVM default pipeline fp16", "fp16"), ("TVM default pipeline amp-fp16", "amp-fp16")):
        p = peers[name]
        assert (p.candidate is not None and p.candidate.precision == precision) or "tvm" in str(p.reason)


def test_a_tf_graph_at_o2_has_a_reason_for_every_torch_only_row() -> None:
    peers = {p.name: p for p in peers_for("tf", "cpu", "o2")}
    assert peers["eager .half()"].reason == "not run: the model is a TensorFlow graph (no PyTorch module)"
    assert peers["TVM default pipeline fp16"].reason == "not run: TVM takes a TensorFlow graph in fp32 or amp-fp16 only"
    amp = peers["TVM default pipeline amp-fp16"]
    assert amp.candidate is None or (amp.candidate.precision, amp.candidate.option("frontend")) == ("amp-fp16", "onnx")
