"""A seed-like TensorFlow workload: an ASR-style attention decoder, frozen to a GraphDef.

Modelled on the seed's ``frozen.pb`` (PAI-Blade's TF AICompiler demo): a tf.compat.v1 graph with
inputs ``encoder_memory_placeholder`` (batch, time, dim) and ``encoder_memory_length_placeholder``
(batch,), outputs ``score`` (batch,) and ``seq_id`` (batch, steps), and a greedy decoding loop
(``tf.while_loop``) over a GRU cell with additive attention on the masked encoder memory. Weights
are random (seeded) and frozen into constants.

    PYTHONPATH=. python experiments/workloads/tf_asr.py OUT_DIR

writes ``OUT_DIR/frozen.pb``, ``OUT_DIR/test_bc4.npy`` (one feed dict with batch 4, a pickled
dict like the seed's) and ``OUT_DIR/test_samples.npy`` (a pickled list of more feed dicts: batch 4
at several memory lengths), so that

    tune --model OUT_DIR/frozen.pb --inputs encoder_memory_placeholder,encoder_memory_length_placeholder \
         --outputs score,seq_id --test-data OUT_DIR/test_bc4.npy --test-data OUT_DIR/test_samples.npy

It is kept small (a few ms per sample on a CPU core) so that a CPU study is practical.

For a host without TensorFlow (the GPU machine), :func:`prepare` writes the ONNX export, the test
samples and plain TensorFlow's reference outputs on a host with TensorFlow, and
:func:`load_prepared` makes the tuner's workload from those files alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuner.core.workload import Workload

INPUTS: tuple[str, str] = ("encoder_memory_placeholder", "encoder_memory_length_placeholder")
OUTPUTS: tuple[str, str] = ("score", "seq_id")
#: Encoder memory width, decoder state width, attention width, vocabulary, decoding steps.
DIM, HIDDEN, ATTN, VOCAB, STEPS = 64, 128, 64, 48, 12
#: Memory lengths of the test samples (batch 4 each); the first is the seed's test_bc4 sample.
TIMES: tuple[int, ...] = (40, 24, 56, 40, 32, 56)
BATCH = 4
START_TOKEN = 1


def build_graph_def(seed: int = 0, control_flow_v1: bool = False) -> Any:
    """Build the decoder as a tf.compat.v1 graph with its weights as constants (a frozen graph).

    Args:
        seed: Seed of the random weights.
        control_flow_v1: Build the loop with TF1's control flow (Enter/Exit frames) instead of
            a functional While op.

    Returns:
        The frozen ``tf.compat.v1.GraphDef``.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int, scale: float | None = None) -> Any:
        std = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        return tf.constant((rng.standard_normal(shape) * std).astype(np.float32), name=name)

    # TF2 builds tf.while_loop as a functional While op (control flow v2); TF1 graphs such as the
    # seed's frozen.pb have v1 frames (Enter/Exit/Merge/Switch, TensorArrayV3). Both are frozen
    # GraphDefs; XLA's jit_compile takes only the functional form, so v2 is the default here.
    v2_before = tf.compat.v1.control_flow_v2_enabled()
    if control_flow_v1:
        tf.compat.v1.disable_control_flow_v2()
    else:
        tf.compat.v1.enable_control_flow_v2()
    graph = tf.Graph()
    try:
        return _build(graph, weight)
    finally:
        (tf.compat.v1.enable_control_flow_v2 if v2_before else tf.compat.v1.disable_control_flow_v2)()


def _build(graph: Any, weight: Any) -> Any:
    import tensorflow as tf

    v1 = tf.compat.v1
    with graph.as_default():
        memory = v1.placeholder(tf.float32, [None, None, DIM], name=INPUTS[0])
        length = v1.placeholder(tf.int32, [None], name=INPUTS[1])
        batch = tf.shape(memory)[0]
        emb = weight("embedding", VOCAB, HIDDEN, scale=0.5)
        w_mem = weight("attn_memory", DIM, ATTN)
        w_query = weight("attn_query", HIDDEN, ATTN)
        v_attn = weight("attn_v", ATTN, 1)
        w_gates = weight("gru_gates", HIDDEN + DIM + HIDDEN, 2 * HIDDEN)
        b_gates = tf.constant(np.ones(2 * HIDDEN, np.float32), name="gru_gates_bias")
        w_cand = weight("gru_candidate", HIDDEN + DIM + HIDDEN, HIDDEN)
        w_out = weight("output_proj", HIDDEN + DIM, VOCAB, scale=8.0 / np.sqrt(HIDDEN + DIM))
        b_out = tf.constant(np.zeros(VOCAB, np.float32), name="output_bias")

        # Keys of the additive attention, once per utterance; padding frames are masked out.
        keys = tf.tensordot(memory, w_mem, axes=1)
        mask = tf.sequence_mask(length, tf.shape(memory)[1])
        init_state = tf.tanh(tf.reduce_sum(memory, 1) @ weight("init_proj", DIM, HIDDEN)
                             / tf.cast(tf.maximum(length, 1), tf.float32)[:, None])

        def step(i: Any, token: Any, state: Any, score: Any, ids: Any) -> tuple[Any, ...]:
            query = tf.expand_dims(state @ w_query, 1)
            energy = tf.squeeze(tf.tensordot(tf.tanh(keys + query), v_attn, axes=1), -1)
            energy = tf.where(mask, energy, tf.fill(tf.shape(energy), -1e9))
            alpha = tf.nn.softmax(energy, axis=-1)
            context = tf.reduce_sum(tf.expand_dims(alpha, -1) * memory, 1)
            x = tf.concat([tf.gather(emb, token), context, state], axis=-1)
            gates = tf.sigmoid(tf.nn.bias_add(x @ w_gates, b_gates))
            r, z = tf.split(gates, 2, axis=-1)
            cand = tf.tanh(tf.concat([tf.gather(emb, token), context, r * state], -1) @ w_cand)
            state = z * state + (1.0 - z) * cand
            logits = tf.nn.bias_add(tf.concat([state, context], -1) @ w_out, b_out)
            logp = tf.nn.log_softmax(logits, axis=-1)
            token = tf.argmax(logp, axis=-1, output_type=tf.int32)
            score = score + tf.reduce_max(logp, axis=-1)
            # A fixed-shape accumulator rather than a TensorArray: tf2onnx leaves a functional
            # loop's TensorListReserve unconverted (seen with tf2onnx 1.17: ONNX Runtime refuses it).
            ids = ids + tf.expand_dims(token, 1) * tf.cast(tf.equal(tf.range(STEPS), i), tf.int32)[None, :]
            return i + 1, token, state, score, ids

        init = (tf.constant(0), tf.fill([batch], START_TOKEN), init_state, tf.zeros([batch]),
                tf.zeros([batch, STEPS], tf.int32))
        _, _, _, score, ids = tf.while_loop(lambda i, *_: i < STEPS, step, init, name="decoder")
        tf.identity(score, name=OUTPUTS[0])
        tf.identity(ids, name=OUTPUTS[1])
        # Weights are constants already: keep only what the outputs need, as freezing does.
        return v1.graph_util.extract_sub_graph(graph.as_graph_def(), list(OUTPUTS))


def make_samples(times: tuple[int, ...] = TIMES, batch: int = BATCH, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """Feed dicts of batch ``batch``, one per memory length in ``times`` (lengths vary in the batch).

    Args:
        times: Padded memory length of each sample.
        batch: Batch size.
        seed: Seed of the random memory.

    Returns:
        ``[{placeholder name: array}, ...]``.
    """
    rng = np.random.default_rng(seed)
    out = []
    for t in times:
        lengths = np.array([t] + list(rng.integers(max(1, t // 2), t + 1, size=batch - 1)), np.int32)
        out.append({INPUTS[0]: rng.standard_normal((batch, t, DIM)).astype(np.float32), INPUTS[1]: lengths})
    return out


def write_files(out: Path, seed: int = 0) -> dict[str, Path]:
    """Write ``frozen.pb``, ``test_bc4.npy`` (the first sample, a pickled dict) and ``test_samples.npy``.

    Args:
        out: The folder (created if missing).
        seed: Seed of the weights.

    Returns:
        ``{"model": ..., "test_bc4": ..., "samples": ...}``.
    """
    import tensorflow as tf

    out.mkdir(parents=True, exist_ok=True)
    graph_def = build_graph_def(seed)
    tf.io.write_graph(graph_def, str(out), "frozen.pb", as_text=False)
    samples = make_samples()
    # As the seed's test_bc4.npy: np.save of a dict (np.load(..., allow_pickle=True).item()).
    np.save(out / "test_bc4.npy", samples[0], allow_pickle=True)
    np.save(out / "test_samples.npy", np.array(samples[1:], dtype=object), allow_pickle=True)
    return {"model": out / "frozen.pb", "test_bc4": out / "test_bc4.npy", "samples": out / "test_samples.npy"}


def flops(batch: int, time: int) -> float:
    """Floating-point operations of one run (a multiply-add counts 2), counted from the graph's matmuls.

    Only the matrix products and the attention's element-wise work over the memory are counted
    (the rest is O(batch x width) per step): the floor this feeds is a lower bound anyway.

    Args:
        batch: Batch size.
        time: Padded memory length.

    Returns:
        The count.
    """
    keys = 2 * batch * time * DIM * ATTN
    init = batch * time * DIM + 2 * batch * DIM * HIDDEN
    x = HIDDEN + DIM + HIDDEN
    per_step = (2 * batch * HIDDEN * ATTN            # query projection
                + batch * time * ATTN * 2             # keys + query, tanh
                + 2 * batch * time * ATTN             # energy (dot with v)
                + 2 * batch * time * DIM              # context
                + 2 * batch * x * 2 * HIDDEN          # GRU gates
                + 2 * batch * x * HIDDEN              # GRU candidate
                + 2 * batch * (HIDDEN + DIM) * VOCAB)  # output projection
    return float(keys + init + STEPS * per_step)


#: Files :func:`prepare` writes.
PREPARED = ("frozen.pb", "model.onnx", "test_data.pt", "reference.pt", "meta.json")


def prepare(out: Path, times: tuple[int, ...] = TIMES) -> None:
    """Write what a host without TensorFlow needs: the ONNX export, the samples, TF's reference outputs.

    Needs TensorFlow and tf2onnx (the CPU side).

    Args:
        out: The folder (created if missing).
        times: Memory lengths of the samples.
    """
    from tuner.runtime.tf_session import to_onnx
    from tuner.workloads.loading import make_workload

    out.mkdir(parents=True, exist_ok=True)
    graph_def = build_graph_def()
    workload = make_workload(graph_def, make_samples(times), "cpu", name="tf_asr", inputs=list(INPUTS),
                             outputs=list(OUTPUTS))
    model = workload.model
    (out / "frozen.pb").write_bytes(model.graph_def)
    (out / "model.onnx").write_bytes(to_onnx(model))
    torch.save([tuple(s) for s in workload.samples], out / "test_data.pt")
    torch.save([tuple(r) for r in workload.reference], out / "reference.pt")
    meta = {"inputs": list(model.inputs), "outputs": list(model.outputs), "fingerprint": workload.fingerprint,
            "flops": [flops(int(s[0].shape[0]), int(s[0].shape[1])) for s in workload.samples]}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_prepared(directory: Path, device: str) -> Workload:
    """The tuner's workload from :func:`prepare`'s files, without TensorFlow.

    The model carries its ONNX export, so the ``onnxruntime`` and ``tvm`` backends run it; the
    reference outputs are plain TensorFlow's, computed where TensorFlow ran.

    Args:
        directory: What :func:`prepare` wrote.
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        The workload (samples on the CPU, as every TF workload's).
    """
    from tuner.core.tf_model import FRAMEWORK, TFModel

    meta = json.loads((directory / "meta.json").read_text())
    model = TFModel(graph_def=(directory / "frozen.pb").read_bytes(), inputs=tuple(meta["inputs"]),
                    outputs=tuple(meta["outputs"]), source=str(directory / "frozen.pb"),
                    onnx=(directory / "model.onnx").read_bytes())
    samples = tuple(tuple(s) for s in torch.load(directory / "test_data.pt", weights_only=True))
    reference = tuple(tuple(r) for r in torch.load(directory / "reference.pt", weights_only=True))
    return Workload(name="tf_asr", framework=FRAMEWORK, model=model, samples=samples, reference=reference,
                    device=device, source=model.source, fingerprint=str(meta["fingerprint"]))


if __name__ == "__main__":
    paths = write_files(Path(sys.argv[1] if len(sys.argv) > 1 else "tf-asr"))
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
