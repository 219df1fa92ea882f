# ruff: noqa
# The seed's first TensorFlow example (PAI-Blade AICompiler, "通過Dynamic Shape模式編譯TensorFlow模型"),
# verbatim except the import lines: `import tensorflow as tf` became `import tensorflow.compat.v1 as tf`
# (TF 2 keeps tf.GraphDef under compat.v1) and `import blade` became `import tuner as blade`.
# Run it from a folder holding frozen.pb and test_bc4.npy (the seed-like ASR workload's maker,
# experiments/workloads/tf_asr.py, writes them).
import numpy as np
import tensorflow.compat.v1 as tf
import tuner as blade

# 加載模型和測試數據。
graph_def = tf.GraphDef()
with open('./frozen.pb', 'rb') as f:
    graph_def.ParseFromString(f.read())
test_data = np.load('test_bc4.npy', allow_pickle=True, encoding='bytes',).item()

# 開始優化。
optimized_model, opt_spec, report = blade.optimize(
    graph_def,                 # The original model, here is a TF GraphDef.
    'o1',                      # Optimization level o1 or o2.
    device_type='gpu',         # Target device to run the optimized model.
    config=blade.Config(),
    inputs=['encoder_memory_placeholder', 'encoder_memory_length_placeholder'],
    outputs=['score', 'seq_id'],
    test_data=[test_data]
    #verbose=True
)

# 保存優化結果。
tf.train.write_graph(optimized_model, "./", "optimized.pb", as_text=False)
print("Report: {}".format(report))
