"""The network: a transformers encoder, a pooling of its tokens and a linear multi-label head."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel


class LabellerNet(torch.nn.Module):
    """A transformers encoder, a pooling of its tokens and a linear multi-label head.

    pooling: "mean" (what sentence-transformers checkpoints were trained for),
    "cls" (the raw [CLS] vector) or "pooler" (BertForSequenceClassification's
    dense+tanh over [CLS], the v0.1 recipe).
    """

    def __init__(
        self, encoder: torch.nn.Module, num_labels: int, pooling: str = "mean", dropout: float = 0.1
    ):
        super().__init__()
        if pooling not in ("mean", "cls", "pooler"):
            raise ValueError(f"pooling must be mean, cls or pooler, not {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "pooler":
            return out.pooler_output.float()
        hidden = out.last_hidden_state.float()
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        pooled = self.pool(input_ids, attention_mask)
        return pooled, self.head(self.dropout(pooled))


def load_encoder(name_or_path: str | Path, pooling: str) -> torch.nn.Module:
    """The transformers encoder, with the BERT pooler only where pooling needs it."""
    kwargs = {} if pooling == "pooler" else {"add_pooling_layer": False}
    try:
        return AutoModel.from_pretrained(str(name_or_path), **kwargs)
    except TypeError:  # encoders without a pooler do not take the argument
        return AutoModel.from_pretrained(str(name_or_path))
