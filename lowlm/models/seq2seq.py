"""Attention sequence-to-sequence: BiGRU encoder -> Bahdanau or Luong attention -> GRU decoder.

The decoder feeds its previous attentional vector back in with the previous word (input feeding),
masks source padding, can tie its output layer to its embeddings, and can copy source tokens
(pointer-generator; source and target must then share one vocabulary), and can keep a coverage vector
(See et al. 2017: the attention summed over the steps so far is an input of the next attention scores,
and ``teacher_forced`` returns the coverage penalty sum_i min(a_i, c_i) that training adds to the loss,
so the decoder stops attending to, and repeating, what it has already said). Decoding is greedy or
batched beam search with length normalisation, both stopping at ``[EOS]`` or a maximum length.

Shapes: ``src`` (B, S) right-padded source ids with ``src_lengths`` (B,); ``tgt`` (B, T) target ids
that start with ``[BOS]`` and end with ``[EOS]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lowlm.config.models import Seq2SeqModelConfig
from lowlm.text.tokenizer import BOS_ID, EOS_ID, PAD_ID


class AdditiveAttention(nn.Module):
    """Bahdanau: score(s, h) = v . tanh(W_s s + W_h h), with coverage c (See et al.): + w_c c inside the tanh."""

    def __init__(self, query_dim: int, key_dim: int, dim: int, coverage: bool = False):
        super().__init__()
        self.query = nn.Linear(query_dim, dim, bias=False)
        self.key = nn.Linear(key_dim, dim)
        self.v = nn.Linear(dim, 1, bias=False)
        self.coverage = nn.Linear(1, dim, bias=False) if coverage else None

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key(keys)

    def scores(self, query: torch.Tensor, prepared: torch.Tensor, coverage: torch.Tensor | None = None) -> torch.Tensor:
        x = prepared + self.query(query).unsqueeze(1)
        if coverage is not None:
            x = x + self.coverage(coverage.unsqueeze(-1))
        return self.v(torch.tanh(x)).squeeze(-1)


class MultiplicativeAttention(nn.Module):
    """Luong "general": score(s, h) = s . W h, with coverage c: + w_c c (one learned weight)."""

    def __init__(self, query_dim: int, key_dim: int, dim: int = 0, coverage: bool = False):
        super().__init__()
        self.key = nn.Linear(key_dim, query_dim, bias=False)
        self.coverage = nn.Parameter(torch.zeros(1)) if coverage else None

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key(keys)

    def scores(self, query: torch.Tensor, prepared: torch.Tensor, coverage: torch.Tensor | None = None) -> torch.Tensor:
        scores = torch.bmm(prepared, query.unsqueeze(2)).squeeze(2)
        return scores if coverage is None else scores + self.coverage * coverage


@dataclass
class EncoderState:
    outputs: torch.Tensor  # (B, S, 2H)
    prepared: torch.Tensor  # attention keys, (B, S, A)
    mask: torch.Tensor  # (B, S) True on real tokens
    src: torch.Tensor  # (B, S) ids, for copying

    def repeat(self, k: int) -> "EncoderState":
        return EncoderState(*(t.repeat_interleave(k, dim=0) for t in (self.outputs, self.prepared, self.mask, self.src)))


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqModelConfig, src_vocab: int, tgt_vocab: int):
        super().__init__()
        self.config, self.dims = config, {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab}
        embedding_dim, hidden_dim, attention_dim = config.embedding_dim, config.hidden_dim, config.attention_dim
        copy, share_embeddings = config.pointer, config.share_embeddings
        if (copy or share_embeddings) and src_vocab != tgt_vocab:
            raise ValueError("copy and share_embeddings need one vocabulary for source and target")
        self.src_embedding = nn.Embedding(src_vocab, embedding_dim, padding_idx=PAD_ID)
        self.tgt_embedding = self.src_embedding if share_embeddings else nn.Embedding(tgt_vocab, embedding_dim,
                                                                                       padding_idx=PAD_ID)
        self.encoder = nn.GRU(embedding_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden_dim, hidden_dim)
        attention_cls = {"additive": AdditiveAttention, "multiplicative": MultiplicativeAttention}[config.attention]
        self.attention = attention_cls(hidden_dim, 2 * hidden_dim, attention_dim, coverage=config.coverage)
        self.cell = nn.GRUCell(embedding_dim + hidden_dim, hidden_dim)
        self.combine = nn.Linear(hidden_dim + 2 * hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        if config.tie_embeddings:
            self.to_embedding = nn.Linear(hidden_dim, embedding_dim)
            self.out = None
        else:
            self.out = nn.Linear(hidden_dim, tgt_vocab)
        self.copy_gate = nn.Linear(hidden_dim + 2 * hidden_dim + embedding_dim, 1) if copy else None

    # -- encoder ----------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[EncoderState, torch.Tensor]:
        x = self.dropout(self.src_embedding(src))
        packed = pack_padded_sequence(x, src_lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, h = self.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        mask = torch.arange(src.shape[1], device=src.device).unsqueeze(0) < src_lengths.unsqueeze(1)
        hidden = torch.tanh(self.bridge(torch.cat([h[0], h[1]], dim=-1)))
        return EncoderState(out, self.attention.prepare(out), mask, src), hidden

    # -- one decoder step -------------------------------------------------------------------------
    def step(self, prev: torch.Tensor, hidden: torch.Tensor, feed: torch.Tensor, enc: EncoderState,
             coverage: torch.Tensor | None = None):
        """Log-probabilities of the next token given the previous one; returns new state and attention.
        ``coverage`` (B, S): the attention summed over the earlier steps (``initial_coverage``), or None."""
        emb = self.dropout(self.tgt_embedding(prev))
        hidden = self.cell(torch.cat([emb, feed], dim=-1), hidden)
        scores = self.attention.scores(hidden, enc.prepared, coverage).masked_fill(~enc.mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.unsqueeze(1), enc.outputs).squeeze(1)
        feed = self.dropout(torch.tanh(self.combine(torch.cat([hidden, context], dim=-1))))
        logits = self.out(feed) if self.out is not None else self.to_embedding(feed) @ self.tgt_embedding.weight.T
        if self.copy_gate is None:
            return torch.log_softmax(logits, dim=-1), hidden, feed, weights
        p_gen = torch.sigmoid(self.copy_gate(torch.cat([hidden, context, emb], dim=-1)))
        probs = p_gen * torch.softmax(logits, dim=-1)
        probs = probs.scatter_add(1, enc.src, (1 - p_gen) * weights)
        return torch.log(probs.clamp_min(1e-12)), hidden, feed, weights

    def initial_feed(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.new_zeros(hidden.shape[0], self.config.hidden_dim)

    def initial_coverage(self, enc: EncoderState) -> torch.Tensor | None:
        """Zeros (B, S) when the model keeps coverage, else None (each step then attends afresh)."""
        return enc.outputs.new_zeros(enc.mask.shape) if self.config.coverage else None

    # -- training ---------------------------------------------------------------------------------
    def teacher_forced(self, src: torch.Tensor, src_lengths: torch.Tensor,
                       tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities for ``tgt[:, 1:]`` (B, T-1, V) and each step's coverage penalty (B, T-1):
        sum over source positions of min(attention, coverage so far), zeros without coverage."""
        enc, hidden = self.encode(src, src_lengths)
        feed, coverage = self.initial_feed(hidden), self.initial_coverage(enc)
        steps, penalties = [], []
        for t in range(tgt.shape[1] - 1):
            logp, hidden, feed, weights = self.step(tgt[:, t], hidden, feed, enc, coverage)
            steps.append(logp)
            if coverage is not None:
                penalties.append(torch.minimum(weights, coverage).sum(dim=-1))
                coverage = coverage + weights
        logp = torch.stack(steps, dim=1)
        return logp, torch.stack(penalties, dim=1) if penalties else logp.new_zeros(logp.shape[:2])

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities for ``tgt[:, 1:]``: (B, T-1, V)."""
        return self.teacher_forced(src, src_lengths, tgt)[0]

    # -- decoding ---------------------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, src: torch.Tensor, src_lengths: torch.Tensor, max_length: int = 64):
        """Token ids (B, L) without [BOS], padded after [EOS]; and attention (B, L, S)."""
        enc, hidden = self.encode(src, src_lengths)
        feed, coverage = self.initial_feed(hidden), self.initial_coverage(enc)
        prev = torch.full((src.shape[0],), BOS_ID, dtype=torch.long, device=src.device)
        done = torch.zeros_like(prev, dtype=torch.bool)
        tokens, attention = [], []
        for _ in range(max_length):
            logp, hidden, feed, weights = self.step(prev, hidden, feed, enc, coverage)
            coverage = None if coverage is None else coverage + weights
            prev = logp.argmax(dim=-1).masked_fill(done, PAD_ID)
            tokens.append(prev)
            attention.append(weights)
            done |= prev == EOS_ID
            if done.all():
                break
        return torch.stack(tokens, dim=1), torch.stack(attention, dim=1)

    @torch.no_grad()
    def sample(self, src: torch.Tensor, src_lengths: torch.Tensor, max_length: int = 64, top_k: int = 0,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ids (B, L) drawn token by token from the model's distribution (softened or sharpened by
        ``temperature``, cut to the ``top_k`` likeliest tokens when ``top_k`` > 0), padded after [EOS].
        Sampled back-translations (Edunov et al. 2018) come from here; ``generator`` makes them repeatable."""
        enc, hidden = self.encode(src, src_lengths)
        feed, coverage = self.initial_feed(hidden), self.initial_coverage(enc)
        prev = torch.full((src.shape[0],), BOS_ID, dtype=torch.long, device=src.device)
        done = torch.zeros_like(prev, dtype=torch.bool)
        tokens = []
        for _ in range(max_length):
            logp, hidden, feed, weights = self.step(prev, hidden, feed, enc, coverage)
            coverage = None if coverage is None else coverage + weights
            logits = logp / max(temperature, 1e-6)
            if 0 < top_k < logits.shape[1]:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            prev = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(src.device)
            prev = prev.masked_fill(done, PAD_ID)
            tokens.append(prev)
            done |= prev == EOS_ID
            if done.all():
                break
        return torch.stack(tokens, dim=1)

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int = 5,
                    max_length: int = 64, length_penalty: float = 1.0) -> torch.Tensor:
        """Best hypothesis per input by total log-probability / length**length_penalty: ids (B, L)."""
        B, K = src.shape[0], beam_size
        enc, hidden = self.encode(src, src_lengths)
        enc, hidden = enc.repeat(K), hidden.repeat_interleave(K, dim=0)
        feed, coverage = self.initial_feed(hidden), self.initial_coverage(enc)
        prev = torch.full((B * K,), BOS_ID, dtype=torch.long, device=src.device)
        # only the first beam of each input is live at the start, so the K beams do not start equal
        scores = torch.full((B, K), float("-inf"), device=src.device)
        scores[:, 0] = 0.0
        scores = scores.view(-1)
        done = torch.zeros(B * K, dtype=torch.bool, device=src.device)
        lengths = torch.zeros(B * K, device=src.device)
        history = torch.empty(B * K, 0, dtype=torch.long, device=src.device)
        for _ in range(max_length):
            logp, hidden, feed, weights = self.step(prev, hidden, feed, enc, coverage)
            coverage = None if coverage is None else coverage + weights
            V = logp.shape[1]
            # a finished beam continues with one padding token at no cost
            finished = torch.full_like(logp, float("-inf"))
            finished[:, PAD_ID] = 0.0
            logp = torch.where(done.unsqueeze(1), finished, logp)
            total = (scores.unsqueeze(1) + logp).view(B, K * V)
            top, index = total.topk(K, dim=1)
            beam = index // V + torch.arange(B, device=src.device).unsqueeze(1) * K
            beam, token = beam.view(-1), (index % V).view(-1)
            scores, hidden, feed = top.view(-1), hidden[beam], feed[beam]
            coverage = None if coverage is None else coverage[beam]
            history = torch.cat([history[beam], token.unsqueeze(1)], dim=1)
            lengths = lengths[beam] + (~done[beam]).float()
            done = done[beam] | (token == EOS_ID)
            prev = token
            if done.all():
                break
        normalised = (scores / lengths.clamp(min=1) ** length_penalty).view(B, K)
        best = normalised.argmax(dim=1) + torch.arange(B, device=src.device) * K
        return history[best]


def sequence_loss(logp: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean label-smoothed negative log-likelihood over non-padding target tokens.

    ``logp`` (B, T, V) from ``Seq2Seq.forward``; ``target`` (B, T) = ``tgt[:, 1:]``.
    """
    mask = target != PAD_ID
    nll = -logp.gather(2, target.unsqueeze(2)).squeeze(2)
    loss = (1 - smoothing) * nll + smoothing * -logp.mean(dim=2) if smoothing else nll
    return (loss * mask).sum() / mask.sum().clamp(min=1)
