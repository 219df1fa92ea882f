# ruff: noqa
# The seed's PyTorch example (PAI-Blade AICompiler, "通過Dynamic Shape模式編譯PyTorch模型"),
# verbatim except two lines: `import blade` became `import tuner as blade`, and the model file
# 'orig_decoder_v2.pt' became 'decoder.pt' (the demo decoder: python experiments/make_demo_files.py .).
# Run it from the folder that holds decoder.pt. Its test data calls .cuda(), so it needs a GPU as
# written; tests/tuner_tests/api/test_optimize.py runs it with .cuda() dropped on CPU-only machines.
import os
import time
import torch
# To use blade, just import it.
import tuner as blade

# 加載模型。
pt_file = 'decoder.pt'
batch = 8
model = torch.jit.load(pt_file)

# 準備測試數據。
def get_test_data(batch_size=1):
    decoder_input_t = torch.LongTensor([1] * batch_size).cuda()
    decoder_hidden_t = torch.rand(batch_size, 1, 256).cuda()
    decoder_hidden_t = decoder_hidden_t * 1.0
    decoder_hidden_t = torch.tanh(decoder_hidden_t)
    output_highfeature_t = torch.rand(batch_size, 448, 4, 50).cuda()
    attention_sum_t = torch.rand(batch_size, 1, 4, 50).cuda()
    decoder_attention_t = torch.rand(batch_size, 1, 4, 50).cuda()
    et_mask = torch.rand(batch_size, 4, 50).cuda()
    return (decoder_input_t, decoder_hidden_t, output_highfeature_t, attention_sum_t, decoder_attention_t, et_mask)

dummy = get_test_data(batch)

# 開始優化。
optimized_model, opt_spec, report = blade.optimize(
    model,  # The original model, here is a torch scrip model.
    'o1',  # Optimization level o1 or o2.
    device_type='gpu',  # Target device to run the optimized model.
    test_data=[dummy],  # For PyTorch, input data is list of tupoles.
    config=blade.Config()
)

print("spec: {}".format(opt_spec))
print("report: {}".format(report))

# 導出優化結果。
torch.jit.save(optimized_model, 'optimized_decoder.pt')
