"""Dynamic int8 quantization: int8 weights on disk, int8 matrix products at inference.

On disk every large weight matrix (embeddings, linear layers, the RNN's input and hidden weights) is
int8 with one float scale per row (symmetric, ``round(w / scale)`` in [-127, 127]): about a quarter of
the float32 bytes; large int64 buffers (a word's character ids, the n-gram index) are stored in the
narrowest integer type that holds their values. At load the rows are scaled back to floats and the model's ``Linear``, ``GRU``,
``LSTM`` and ``GRUCell``/``LSTMCell`` layers become torch's dynamically quantized ones
(``torch.ao.quantization.quantize_dynamic``: int8 weights, activations quantized per batch on the fly),
which is where the speed comes from; embeddings stay float lookups of the de-quantized rows.

>>> state = {"w": torch.tensor([[0.5, -1.0], [0.02, 0.01]]), "b": torch.tensor([0.1, 0.2]), "i": torch.tensor([3, 900])}
>>> packed = pack_int8(state, min_size=1)
>>> sorted(packed), packed["w.int8"].dtype, packed["i.as_int64"].dtype
(['b', 'i.as_int64', 'w.int8', 'w.scale'], torch.int8, torch.int16)
>>> unpacked = unpack_int8(packed)
>>> bool((unpacked["w"] - state["w"]).abs().max() < 0.005), unpacked["i"].dtype
(True, torch.int64)
"""

from __future__ import annotations

import torch
from torch import nn

INT8_SUFFIX, SCALE_SUFFIX, INT64_SUFFIX = ".int8", ".scale", ".as_int64"
DYNAMIC_LAYERS = {nn.Linear, nn.GRU, nn.LSTM, nn.GRUCell, nn.LSTMCell}


def pack_int8(state: dict[str, torch.Tensor], min_size: int = 256) -> dict[str, torch.Tensor]:
    """``state`` with every floating 2-D tensor of at least ``min_size`` values as int8 rows and their scales
    (``NAME.int8``, ``NAME.scale``), every int64 one in its narrowest integer type (``NAME.as_int64``);
    smaller tensors (biases, tiny layers) as they are."""
    packed = {}
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dim() == 2 and tensor.numel() >= min_size:
            scale = tensor.abs().amax(dim=1).clamp(min=1e-12) / 127
            packed[name + INT8_SUFFIX] = torch.round(tensor / scale.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
            packed[name + SCALE_SUFFIX] = scale.float()
        elif tensor.dtype == torch.int64 and tensor.numel() >= min_size:
            packed[name + INT64_SUFFIX] = tensor.to(_narrowest(tensor))
        else:
            packed[name] = tensor
    return packed


def _narrowest(tensor: torch.Tensor) -> torch.dtype:
    low, high = (int(tensor.min()), int(tensor.max())) if tensor.numel() else (0, 0)
    return next(t for t in (torch.int8, torch.int16, torch.int32, torch.int64)
                if torch.iinfo(t).min <= low and high <= torch.iinfo(t).max)


def unpack_int8(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float state dict back from ``pack_int8`` (each value within half a row's scale of the original)."""
    state = {}
    for name, tensor in packed.items():
        if name.endswith(INT8_SUFFIX):
            base = name[: -len(INT8_SUFFIX)]
            state[base] = tensor.float() * packed[base + SCALE_SUFFIX].unsqueeze(1)
        elif name.endswith(INT64_SUFFIX):
            state[name[: -len(INT64_SUFFIX)]] = tensor.long()
        elif not name.endswith(SCALE_SUFFIX):
            state[name] = tensor
    return state


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose linear and recurrent layers run int8 (torch's dynamic quantization)."""
    torch.backends.quantized.engine = _engine()
    return torch.ao.quantization.quantize_dynamic(model.eval(), DYNAMIC_LAYERS, dtype=torch.qint8)


def _engine() -> str:
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm", "qnnpack") if e in engines), engines[0])
