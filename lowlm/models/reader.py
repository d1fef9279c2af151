"""An extractive reader: which span of a context answers a question.

    context ids ─ embedding (+ characters) ─┬─ (+ DrQA features, + aligned question embedding) ─ BiRNN ─ C
    question ids ─ embedding (+ characters) ─┴──────────────────────────────────────────────── BiRNN ─ Q
    bidaf:   S_ij = w·[c_i; q_j; c_i∘q_j] (computed without the T×J×3d tensor), context-to-question
             attention Ã = softmax_j(S) Q, question-to-context h̃ = softmax_i(max_j S) C,
             G = [C; Ã; C∘Ã; C∘h̃] ─ BiRNN ─ M ─ start = w_s·[G; M];  M ─ BiRNN ─ M2 ─ end = w_e·[G; M2]
    aligned: q = attention-pooled Q; start_i = c_i W_s q, end_i = c_i W_e q   (DrQA)

``forward`` returns start and end logits over context positions (padding masked out); ``best_spans``
decodes the best (start, end) pair with start <= end < start + max_answer_tokens, not two argmaxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lowlm.config.models import ReaderConfig
from lowlm.models.classifier import AdditiveAttentionPool, CharWordEncoder
from lowlm.text.qa import FEATURES

MASKED = -1e30  # a logit no real position reaches; finite, so softmax over a row stays defined


def lengths_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class Reader(nn.Module):
    def __init__(self, config: ReaderConfig, vocab_size: int, words: list[str] | None = None):
        super().__init__()
        self.config, self.dims = config, {"vocab_size": vocab_size}
        hidden, char_dim = config.hidden_dim, config.char_dim
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=0)
        self.chars = None
        if char_dim:
            if words is None or len(words) != vocab_size:
                raise ValueError("char_dim > 0 needs `words`: the vocabulary ordered by id")
            self.chars = CharWordEncoder(words, char_dim)
        word_dim = config.embedding_dim + char_dim
        context_in = word_dim + (FEATURES if config.features else 0)
        self.align = None
        if config.attention == "aligned":
            self.align = nn.Linear(word_dim, word_dim)
            context_in += word_dim
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[config.cell]

        def birnn(size_in: int, layers: int = config.layers) -> nn.Module:
            return rnn(size_in, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                       dropout=config.dropout if layers > 1 else 0.0)

        self.context_rnn, self.question_rnn = birnn(context_in), birnn(word_dim)
        d = 2 * hidden
        self.dropout = nn.Dropout(config.dropout)
        if config.attention == "bidaf":
            self.w_context, self.w_question = nn.Linear(d, 1), nn.Linear(d, 1, bias=False)
            self.w_product = nn.Parameter(torch.empty(d).uniform_(-1 / d ** 0.5, 1 / d ** 0.5))
            self.modelling, self.end_rnn = birnn(4 * d), birnn(d, 1)
            self.start_head, self.end_head = nn.Linear(5 * d, 1), nn.Linear(5 * d, 1)
        else:
            self.question_pool = AdditiveAttentionPool(d, d)
            self.start_head, self.end_head = nn.Linear(d, d), nn.Linear(d, d)

    def _words(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)
        if self.chars is not None:
            x = torch.cat([x, self.chars(ids)], dim=-1)
        return x

    def _run(self, rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.dropout(x), lengths.cpu().clamp(min=1), batch_first=True,
                                      enforce_sorted=False)
        h, _ = rnn(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return h

    def forward(self, context: torch.Tensor, context_lengths: torch.Tensor, features: torch.Tensor,
                question: torch.Tensor, question_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c_mask, q_mask = lengths_mask(context_lengths, context.shape[1]), lengths_mask(question_lengths, question.shape[1])
        c_words, q_words = self._words(context), self._words(question)
        parts = [c_words]
        if self.config.features:
            parts.append(features)
        if self.align is not None:  # each context word attends over the question's words
            a, b = torch.relu(self.align(c_words)), torch.relu(self.align(q_words))
            scores = (a @ b.transpose(1, 2)).masked_fill(~q_mask.unsqueeze(1), MASKED)
            parts.append(torch.softmax(scores, dim=-1) @ q_words)
        c = self._run(self.context_rnn, torch.cat(parts, dim=-1), context_lengths)
        q = self._run(self.question_rnn, q_words, question_lengths)
        if self.config.attention == "bidaf":
            start, end = self._bidaf(c, q, context_lengths, c_mask, q_mask)
        else:
            pooled, _ = self.question_pool(q, q_mask)
            c = self.dropout(c)
            start = (c @ self.start_head(pooled).unsqueeze(2)).squeeze(2)
            end = (c @ self.end_head(pooled).unsqueeze(2)).squeeze(2)
        return start.masked_fill(~c_mask, MASKED), end.masked_fill(~c_mask, MASKED)

    def _bidaf(self, c, q, context_lengths, c_mask, q_mask):
        similarity = (self.w_context(c) + self.w_question(q).transpose(1, 2)
                      + (c * self.w_product) @ q.transpose(1, 2))  # (B, T, J)
        similarity = similarity.masked_fill(~q_mask.unsqueeze(1), MASKED)
        to_question = torch.softmax(similarity, dim=-1) @ q  # (B, T, d)
        best = similarity.max(dim=-1).values.masked_fill(~c_mask, MASKED)  # (B, T)
        to_context = (torch.softmax(best, dim=-1).unsqueeze(1) @ c).expand_as(c)  # (B, T, d)
        g = torch.cat([c, to_question, c * to_question, c * to_context], dim=-1)
        m = self._run(self.modelling, g, context_lengths)
        m2 = self._run(self.end_rnn, m, context_lengths)
        g = self.dropout(g)
        start = self.start_head(torch.cat([g, self.dropout(m)], dim=-1)).squeeze(-1)
        end = self.end_head(torch.cat([g, self.dropout(m2)], dim=-1)).squeeze(-1)
        return start, end

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Input side first (for gradual unfreezing and discriminative learning rates)."""
        first = [*self.embedding.parameters(), *(self.chars.parameters() if self.chars is not None else [])]
        seen = {id(p) for p in first}
        return [first, [p for p in self.parameters() if id(p) not in seen]]


def best_spans(start: torch.Tensor, end: torch.Tensor, max_tokens: int) -> tuple[torch.Tensor, ...]:
    """Per row, the span (i, j) with i <= j < i + max_tokens maximising start[i] + end[j].

    Returns (starts, ends, logit scores, probabilities), the probability being
    softmax(start)[i] * softmax(end)[j] within the row.

    >>> s = torch.tensor([[-9.0, 5.0, 0.0, 0.0]]); e = torch.tensor([[9.0, 0.0, 1.0, 0.0]])
    >>> i, j, _, _ = best_spans(s, e, 2); i.item(), j.item()   # two argmaxes would say start 1, end 0
    (1, 2)
    """
    batch, width = start.shape
    best = torch.full((batch,), float("-inf"))
    starts = torch.zeros(batch, dtype=torch.long)
    lengths = torch.zeros(batch, dtype=torch.long)
    for k in range(min(max_tokens, width)):  # span length k + 1: start[i] + end[i + k]
        scores = start[:, : width - k] + end[:, k:]
        value, where = scores.max(dim=1)
        better = value > best
        best = torch.where(better, value, best)
        starts = torch.where(better, where, starts)
        lengths = torch.where(better, torch.full_like(lengths, k), lengths)
    ends = starts + lengths
    rows = torch.arange(batch)
    probability = (F.log_softmax(start, dim=1)[rows, starts] + F.log_softmax(end, dim=1)[rows, ends]).exp()
    return starts, ends, best, probability
