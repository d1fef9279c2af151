"""A GRU/LSTM next-token language model in the AWD-LSTM manner (Merity et al. 2018), trained on
unlabelled text so that its encoder can start a classifier, a seq2seq encoder or a reader (ULMFiT).

Each text is one sequence: the forward model reads ``[BOS] w1 .. wn`` and predicts ``w1 .. wn [EOS]``;
with ``directions: 2`` a backward model (sharing the embedding) reads ``[EOS] wn .. w1`` and predicts
``wn .. w1 [BOS]``. The two are the two directions of a bidirectional encoder, so their weights map by
name onto ``nn.GRU(bidirectional=True)`` (``encoder_weights``): ``weight_ih_l0`` from the forward
model, ``weight_ih_l0_reverse`` from the backward one.

Regularisation, each a config setting: embedding dropout (whole words), locked dropout on the RNN's
input and output (one mask per sequence, reused at every step), DropConnect on the hidden-to-hidden
weights (a fresh mask per batch, applied through ``torch.func.functional_call`` so the RNN keeps
its fused kernel), dropout between layers, and output weights tied to the embedding.

>>> from lowlm.config.models import LanguageModelConfig
>>> lm = LanguageModel(LanguageModelConfig(embedding_dim=8, hidden_dim=8), vocab_size=20)
>>> ids, lengths = torch.tensor([[5, 6, 7]]), torch.tensor([3])
>>> total, count = lm.loss(ids, lengths); count   # 4 predictions per direction
8
>>> sorted(encoder_weights(lm, "embedding", "rnn"))[:3]
['embedding.weight', 'rnn.bias_hh_l0', 'rnn.bias_hh_l0_reverse']
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lowlm.config.models import LanguageModelConfig
from lowlm.text.tokenizer import BOS_ID, EOS_ID, PAD_ID

# functional_call hands the RNN weights that are not one flat buffer: harmless, said at every batch
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")


def reverse_padded(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first ``length`` ids reversed, padding left in place.

    >>> reverse_padded(torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2])).tolist()
    [[3, 2, 1], [5, 4, 0]]
    """
    T = ids.shape[1]
    positions = torch.arange(T, device=ids.device).unsqueeze(0)
    source = (lengths.unsqueeze(1) - 1 - positions).clamp(min=0)
    source = torch.where(positions < lengths.unsqueeze(1), source, positions)
    return ids.gather(1, source)


def shifted(ids: torch.Tensor, lengths: torch.Tensor, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs ``start w1..wn``, targets ``w1..wn end``), both (B, T + 1), padded with ``PAD_ID``.

    >>> x, y = shifted(torch.tensor([[5, 6], [7, 0]]), torch.tensor([2, 1]), 2, 3); x.tolist(), y.tolist()
    ([[2, 5, 6], [2, 7, 0]], [[5, 6, 3], [7, 3, 0]])
    """
    B = ids.shape[0]
    inputs = torch.cat([torch.full((B, 1), start, dtype=ids.dtype, device=ids.device), ids], dim=1)
    targets = torch.cat([ids, torch.full((B, 1), PAD_ID, dtype=ids.dtype, device=ids.device)], dim=1)
    targets.scatter_(1, lengths.unsqueeze(1), end)
    return inputs, targets


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with one mask per sequence, shared by all its steps (variational dropout, Gal & Ghahramani)."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


class LanguageModel(nn.Module):
    def __init__(self, config: LanguageModelConfig, vocab_size: int):
        super().__init__()
        self.config, self.dims = config, {"vocab_size": vocab_size}
        E, H = config.embedding_dim, config.hidden_dim
        self.embedding = nn.Embedding(vocab_size, E, padding_idx=PAD_ID)
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[config.cell]
        between = config.dropout_hidden if config.layers > 1 else 0.0
        self.rnn = rnn_cls(E, H, num_layers=config.layers, batch_first=True, dropout=between)
        self.rnn_reverse = (rnn_cls(E, H, num_layers=config.layers, batch_first=True, dropout=between)
                            if config.directions == 2 else None)
        out_dim = E if config.tie_weights else H
        self.project = nn.Linear(H, E) if config.tie_weights and H != E else None
        self.decoder = nn.Linear(out_dim, vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        p = self.config.dropout_embedding
        weight = self.embedding.weight
        if self.training and p:  # drop whole words: rows of the embedding matrix, rescaled
            keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
            weight = weight * keep
        return nn.functional.embedding(ids, weight, padding_idx=PAD_ID)

    def _run(self, rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        p = self.config.dropout_weight
        if self.training and p:
            dropped = {name: nn.functional.dropout(w, p) for name, w in rnn.named_parameters()
                       if name.startswith("weight_hh")}
            h, _ = functional_call(rnn, dropped, (packed,), strict=False)
        else:
            h, _ = rnn(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return h

    def hidden(self, inputs: torch.Tensor, lengths: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """(B, T, H) RNN outputs of one direction's model over ``inputs`` (already shifted)."""
        cfg = self.config
        x = locked_dropout(self._embed(inputs), cfg.dropout_input, self.training)
        return self._run(self.rnn_reverse if reverse else self.rnn, x, lengths)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Next-token logits from RNN outputs (any leading shape; output dropout is applied before)."""
        return self.decoder(self._output(h))

    def _output(self, h: torch.Tensor) -> torch.Tensor:
        return self.project(h) if self.project is not None else h

    def _direction(self, ids: torch.Tensor, lengths: torch.Tensor, reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if reverse:
            inputs, targets = shifted(reverse_padded(ids, lengths), lengths, EOS_ID, BOS_ID)
        else:
            inputs, targets = shifted(ids, lengths, BOS_ID, EOS_ID)
        h = locked_dropout(self.hidden(inputs, lengths + 1, reverse), self.config.dropout_output, self.training)
        mask = targets != PAD_ID  # only real positions reach the (large) output layer
        return self._output(h[mask]), targets[mask]

    def loss(self, ids: torch.Tensor, lengths: torch.Tensor, samples: int = 0) -> tuple[torch.Tensor, int]:
        """(summed next-token cross-entropy over every direction, number of predictions).

        ``samples`` > 0, in training: a sampled softmax (Jean et al. 2015) over the batch's targets plus
        that many words drawn log-uniformly by frequency rank (the tokenizer numbers words by
        frequency), each logit corrected by the log of its expected count, so the output layer costs a
        few thousand columns instead of the vocabulary. Evaluation always uses the full softmax."""
        total, count = ids.new_zeros((), dtype=torch.float), 0
        for reverse in ([False, True] if self.rnn_reverse is not None else [False]):
            h, targets = self._direction(ids, lengths, reverse)
            if samples and self.training:
                candidates, correction = self._candidates(targets, samples)
                logits = h @ self.decoder.weight[candidates].T + self.decoder.bias[candidates] - correction
                targets = torch.searchsorted(candidates, targets)
            else:
                logits = self.decoder(h)
            total = total + nn.functional.cross_entropy(logits, targets, reduction="sum")
            count += len(targets)
        return total, count

    def _candidates(self, targets: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted unique candidate ids (targets and log-uniform draws) and log expected counts."""
        V = self.dims["vocab_size"]
        rank = torch.arange(V, dtype=torch.float, device=targets.device)
        p = torch.log((rank + 2) / (rank + 1)) / torch.log(torch.tensor(V + 1.0))
        drawn = torch.multinomial(p, samples, replacement=True)
        candidates = torch.unique(torch.cat([targets, drawn]))
        expected = -torch.expm1(samples * torch.log1p(-p[candidates].clamp(max=1 - 1e-6)))  # P(drawn at least once)
        return candidates, torch.log(expected.clamp(min=1e-12))

    @torch.no_grad()
    def token_log_probs(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T + 1) the forward model's log-probability of each next token (``[EOS]`` last), 0 on padding."""
        inputs, targets = shifted(ids, lengths, BOS_ID, EOS_ID)
        logp = torch.log_softmax(self.logits(self.hidden(inputs, lengths + 1)), dim=-1)
        picked = logp.gather(2, targets.unsqueeze(2)).squeeze(2)
        return picked.masked_fill(targets == PAD_ID, 0.0)

    @torch.no_grad()
    def continue_ids(self, prefix: list[int], max_tokens: int, temperature: float = 0.0,
                     generator: torch.Generator | None = None) -> list[int]:
        """Up to ``max_tokens`` ids after ``[BOS] prefix`` from the forward model (greedy at temperature 0),
        stopping at ``[EOS]``."""
        rnn = self.rnn
        x = torch.tensor([[BOS_ID, *prefix]], dtype=torch.long)
        h, state = rnn(self.embedding(x))
        out: list[int] = []
        for _ in range(max_tokens):
            logits = self.logits(h[:, -1:])[0, -1]
            logits[PAD_ID] = logits[BOS_ID] = float("-inf")
            if temperature > 0:
                nxt = int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator))
            else:
                nxt = int(logits.argmax())
            if nxt == EOS_ID:
                break
            out.append(nxt)
            h, state = rnn(self.embedding(torch.tensor([[nxt]])), state)
        return out


def encoder_weights(lm: LanguageModel, embedding: str, rnn: str) -> dict[str, torch.Tensor]:
    """The LM's embedding and RNN weights under a bidirectional encoder's names: ``{embedding}.weight``,
    ``{rnn}.weight_ih_l0`` (forward model), ``{rnn}.weight_ih_l0_reverse`` (backward model), ..."""
    out = {f"{embedding}.weight": lm.embedding.weight.detach()}
    for model, suffix in ((lm.rnn, ""), (lm.rnn_reverse, "_reverse")):
        if model is None:
            continue
        for name, tensor in model.named_parameters():
            out[f"{rnn}.{name}{suffix}"] = tensor.detach()
    return out
