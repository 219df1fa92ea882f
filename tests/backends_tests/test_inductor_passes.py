"""The Inductor graph pass that drops ``cat``'s legacy empty inputs (backends._inductor_passes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backends._inductor_passes import PASS_UUID, drop_legacy_empty_cat_inputs
from backends._torch_export import cxx_compiler_available
from backends.inductor import compiled


class GrowingCache(nn.Module):
    """Grows an empty cache as Hugging Face's ``DynamicCache`` does: ``cat([tensor([]), new], dim=-2)``."""

    def __init__(self, empty_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.empty_dtype = empty_dtype

    def forward(self, new: torch.Tensor) -> torch.Tensor:
        keys = torch.tensor([], dtype=self.empty_dtype, device=new.device)
        return torch.cat([keys, new], dim=-2) * 2


def _aten_graph(model: nn.Module, x: torch.Tensor) -> torch.fx.GraphModule:
    module: torch.fx.GraphModule = torch.export.export(model, (x,)).run_decompositions().module()
    return module


def _cat_inputs(graph: torch.fx.Graph) -> list[int]:
    return [len(n.args[0]) for n in graph.find_nodes(op="call_function", target=torch.ops.aten.cat.default)]


def test_the_empty_input_is_dropped_and_the_graph_computes_what_eager_does() -> None:
    x = torch.randn(2, 3, 4, 5)
    module = _aten_graph(GrowingCache(), x)
    assert _cat_inputs(module.graph) == [2]
    assert drop_legacy_empty_cat_inputs(module.graph) == 1
    module.recompile()
    assert _cat_inputs(module.graph) == [1]
    torch.testing.assert_close(module(x), GrowingCache()(x))


def test_an_empty_input_that_promotes_the_dtype_stays() -> None:
    # cat([float32 empty, half]) is float32 in eager: dropping the empty input would change the dtype.
    x = torch.randn(2, 3, 4, 5).half()
    module = _aten_graph(GrowingCache(torch.float32), x)
    assert drop_legacy_empty_cat_inputs(module.graph) == 0
    assert module(x).dtype == torch.float32


@pytest.mark.skipif(not cxx_compiler_available(), reason="Inductor's CPU code needs a C++ compiler")
def test_every_inductor_compile_runs_under_the_pass() -> None:
    # torch 2.13's own post-grad passes drop the empty input too, so the graph cannot tell whether
    # ours ran; the settings Inductor compiles under can.
    import torch._inductor.config as inductor_config
    from torch._inductor.custom_graph_pass import CustomGraphPass

    seen: list[str] = []

    def record(graph: torch.fx.Graph) -> None:  # Inductor's own hook, called while it compiles
        active = inductor_config.post_grad_custom_pre_pass
        seen.append(str(active.uuid()) if isinstance(active, CustomGraphPass) else repr(active))

    torch._dynamo.reset()
    x = torch.randn(2, 3, 4, 5)
    fn = compiled(GrowingCache(), "static", {"post_grad_custom_post_pass": record}, 1, ((),))
    with torch.no_grad():
        torch.testing.assert_close(fn(x), GrowingCache()(x))
    assert seen == [PASS_UUID]
