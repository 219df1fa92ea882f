"""The built-in demo workload: a WAP-style coverage-attention GRU decoder step.

It mirrors the PyTorch model of the seed (an open-source handwritten-math ASR decoder, "WAP":
Watch, Attend and Parse): one decoding step that embeds the previous symbol, runs a GRU cell,
attends over the encoder's feature map with coverage (the sum of past attention, convolved),
runs a second GRU cell on the context and emits symbol scores. Its inputs are shaped like the
seed's: (B,), (B,1,256), (B,448,4,50), (B,1,4,50), (B,1,4,50), (B,4,50).
"""

from __future__ import annotations

import torch
from torch import nn

#: Symbols in the output vocabulary (WAP's CROHME dictionary has 111 plus <eol>).
VOCAB = 112
#: Width of the decoder state; the seed's hidden input is (B, 1, 256).
HIDDEN = 256
#: Channels of the encoder's feature map; the seed's feature input is (B, 448, 4, 50).
FEATURES = 448
#: Width of the attention space and of the coverage convolution.
ATTENTION = 512
#: Size of the feature map (height, width).
GRID = (4, 50)
#: Kernel of the coverage convolution (WAP uses 11x11 over the attention sum).
COVERAGE_KERNEL = 11


class WapDecoder(nn.Module):
    """One step of a coverage-attention GRU decoder (WAP-style).

    Returns ``(log_probs, hidden, alpha, attention_sum)`` shaped (B, VOCAB), (B, 1, HIDDEN),
    (B, 1, H, W) and (B, 1, H, W).
    """

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.gru1 = nn.GRUCell(HIDDEN, HIDDEN)
        self.gru2 = nn.GRUCell(FEATURES, HIDDEN)
        self.query = nn.Linear(HIDDEN, ATTENTION)
        self.key = nn.Conv2d(FEATURES, ATTENTION, kernel_size=1)
        self.coverage_conv = nn.Conv2d(
            1, ATTENTION // 4, kernel_size=COVERAGE_KERNEL, padding=COVERAGE_KERNEL // 2
        )
        self.coverage_proj = nn.Conv2d(ATTENTION // 4, ATTENTION, kernel_size=1, bias=False)
        self.energy = nn.Conv2d(ATTENTION, 1, kernel_size=1)
        self.out_state = nn.Linear(HIDDEN, HIDDEN)
        self.out_embed = nn.Linear(HIDDEN, HIDDEN)
        self.out_context = nn.Linear(FEATURES, HIDDEN)
        self.classifier = nn.Linear(HIDDEN // 2, VOCAB)

    def forward(
        self,
        decoder_input: torch.Tensor,
        decoder_hidden: torch.Tensor,
        features: torch.Tensor,
        attention_sum: torch.Tensor,
        decoder_attention: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run one decoding step (inputs as in the seed's ``get_test_data``)."""
        emb = self.embed(decoder_input)  # (B, HIDDEN)
        s_hat = self.gru1(emb, decoder_hidden.squeeze(1))
        # Coverage: the past attention (sum and last step) tells where not to look again.
        coverage = self.coverage_proj(torch.tanh(self.coverage_conv(attention_sum + decoder_attention)))
        q = self.query(s_hat)[:, :, None, None]
        energy = self.energy(torch.tanh(self.key(features) + q + coverage)).squeeze(1)  # (B, H, W)
        energy = energy - energy.amax(dim=(1, 2), keepdim=True)
        weights = torch.exp(energy) * mask
        alpha = weights / (weights.sum(dim=(1, 2), keepdim=True) + 1e-10)  # (B, H, W)
        context = (features * alpha[:, None]).sum(dim=(2, 3))  # (B, FEATURES)
        s = self.gru2(context, s_hat)
        logit = self.out_state(s) + self.out_embed(emb) + self.out_context(context)
        # Maxout over pairs, as WAP does before its classifier.
        logit = logit.view(logit.shape[0], logit.shape[1] // 2, 2).amax(dim=2)
        log_probs = torch.log_softmax(self.classifier(logit), dim=1)
        alpha = alpha[:, None]
        return log_probs, s[:, None], alpha, attention_sum + alpha


def make_inputs(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """One input tuple shaped like the seed's ``get_test_data(batch)``.

    Args:
        batch: Batch size B.
        generator: Random source, so that test data is reproducible.

    Returns:
        The six inputs (decoder input, hidden, features, attention sum, attention, mask).
    """
    h, w = GRID
    return (
        torch.randint(1, VOCAB, (batch,), generator=generator),
        torch.tanh(torch.rand(batch, 1, HIDDEN, generator=generator)),
        torch.rand(batch, FEATURES, h, w, generator=generator),
        torch.rand(batch, 1, h, w, generator=generator),
        torch.rand(batch, 1, h, w, generator=generator),
        (torch.rand(batch, h, w, generator=generator) > 0.1).float(),
    )
