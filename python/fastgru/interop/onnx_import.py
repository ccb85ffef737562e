"""ONNX -> fastgru: ``from_onnx`` reads a graph of ONNX ``GRU`` ops and a Dense head.

The graph is run abstractly, tensor by tensor, and only the nodes the chosen output depends on:
constants are evaluated (ONNX's reference evaluator, for a listed set of cheap ops within a size
budget: ``_CONST_OPS``), values computed from runtime shapes are only good for building zero
initial states, and the tensor that descends from the model input carries the fastgru layers
it has been through plus what each of its axes is (batch, time, features, or a size-one axis).
What each op does to that tensor is one function per op in the table ``_DATA_OPS``. That reads
graphs from other exporters too (``torch.onnx.export``: Transpose, GRU, Squeeze, Gather of the
last step, Gemm) and refuses, naming it, whatever fastgru would compute differently. The way
out is ``onnx_export``. onnx is imported only inside the functions.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..saving import open_regular_file
from ._chain import GRUSpec, Spec, build_sequential, dense_spec, with_activation, with_affine
from ._layout import onnx_gru_to_keras
from .onnx_export import OPSET

__all__ = ["from_onnx"]

# elements that computed constants may have beyond what the initializers hold (shape arithmetic,
# small folded tensors); what a model needs more than that would be in its initializers
_CONSTANT_ROOM = 1 << 20


class _Unsupported(Exception):
    """What a node does has no fastgru equivalent (the message says what and why)."""


class _Malformed(Exception):
    """A node that breaks the ONNX spec (a damaged or hand-broken model)."""


@dataclass(frozen=True)
class _Const:
    value: np.ndarray


class _RuntimeShape:
    """A value computed from runtime shapes (Shape ops): only good for building zero states."""


class _Zeros:
    """A tensor known to be all zeros, of a shape known only at runtime."""


_SHAPE, _ZEROS = _RuntimeShape(), _Zeros()


@dataclass(frozen=True)
class _Data:
    """A tensor computed from the model input ``source``: ``chain`` holds the fastgru layers it
    went through (their weights; never changed in place), ``axes`` says what each axis is:
    'B' batch, 'T' time, 'F' features, '1' size one (e.g. ONNX's direction axis), and 'in0',
    'in1' the model input's first two axes until a GRU tells which one is time."""

    chain: Tuple[Spec, ...]
    axes: Tuple[str, ...]
    source: str


@dataclass(frozen=True)
class _Stack:
    """Tensors concatenated along a size-one axis (PyTorch's ``h_n``: one state per layer);
    fastgru follows it only to the pick of one part."""

    parts: Tuple[_Data, ...]
    axis: int


@dataclass(frozen=True)
class _InputPart:
    """A Slice or Gather of a model input that is no layer's data (PyTorch's per-layer part
    of its h0 input): fine as a GRU's initial_h, which ``predict`` feeds zeros; anything
    else made from it is refused with ``reason``."""

    source: str
    reason: str


@dataclass(frozen=True)
class _Refused:
    """Why a value cannot be followed; raised as ``error`` if the model's output needs it."""

    reason: str
    error: type = NotImplementedError


# ops that keep an all-zeros tensor all zeros, whatever their other (shape) inputs
_ZERO_KEEPING = {"Identity", "Cast", "Slice", "Expand", "Reshape", "Unsqueeze", "Squeeze",
                 "Transpose", "Tile", "Gather", "Flatten"}


def _attrs(node) -> Dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def _const(value, what: str) -> np.ndarray:
    if isinstance(value, _Const):
        return value.value
    raise _Unsupported(f"{what} must be a constant (an initializer or computed from them)")


def _norm_axis(axis: int, rank: int, what: str) -> int:
    axis = int(axis)
    if not -rank <= axis < rank:
        raise _Unsupported(f"{what}: axis {axis} out of range for rank {rank}")
    return axis % rank


def _slice_args(ins, attrs, opset):
    """A Slice node's starts, ends, axes and steps: inputs from opset 10, attributes before."""
    if opset >= 10:
        starts, ends = _int_list(ins[1], "Slice starts"), _int_list(ins[2], "Slice ends")
        axes = _int_list(ins[3], "Slice axes") if len(ins) > 3 and ins[3] is not None \
            else list(range(len(starts)))
        steps = _int_list(ins[4], "Slice steps") if len(ins) > 4 and ins[4] is not None \
            else [1] * len(starts)
        return starts, ends, axes, steps
    starts, ends = list(attrs["starts"]), list(attrs["ends"])
    return starts, ends, list(attrs.get("axes", range(len(starts)))), [1] * len(starts)


def _int_list(value, what: str) -> List[int]:
    return [int(v) for v in np.asarray(_const(value, what)).reshape(-1)]


def _last_step(x: _Data, how: str) -> Tuple[Spec, ...]:
    """The chain when only the last time step is read: the last GRU returns its last state
    (the Dense layers after it act step by step, so reading the last step before them is the
    same)."""
    gru_ids = [i for i, s in enumerate(x.chain) if isinstance(s, GRUSpec)]
    if not gru_ids:
        raise _Unsupported(f"{how} picks one time step of the model input; fastgru GRUs read "
                           "whole sequences")
    chain = list(x.chain)
    chain[gru_ids[-1]] = replace(chain[gru_ids[-1]], return_sequences=False)
    return tuple(chain)


def _feature_vector(c: np.ndarray, x: _Data, op: str) -> np.ndarray:
    """A constant operand broadcast along the feature (last) axis only, as a vector or scalar."""
    if x.axes[-1] != "F":
        raise _Unsupported(f"{op} on a tensor whose last axis is {x.axes[-1]!r}, not the features")
    c = np.asarray(c)
    if c.ndim > len(x.axes) or any(d != 1 for d in c.shape[:-1]):
        raise _Unsupported(f"{op} with a constant of shape {c.shape}: fastgru can only add or "
                           "multiply per feature")
    return c.reshape(-1)


def _gru_node(node, ins, attrs, states: List[str]) -> List[Any]:
    """One ONNX GRU op applied to a data tensor: Y and Y_h."""
    name = f"GRU node {node.name or node.output[0]!r}"
    x = ins[0]
    if not isinstance(x, _Data):
        raise _Unsupported(f"{name}: its input X is not computed from the model input")
    problems = []
    if attrs.get("direction", "forward") != "forward":
        problems.append(f"direction={attrs['direction']!r} (fastgru runs one direction, forward)")
    acts = [a.lower() for a in attrs.get("activations", ["Sigmoid", "Tanh"])]
    if acts != ["sigmoid", "tanh"]:
        problems.append(f"activations={attrs['activations']} (fastgru uses Sigmoid, Tanh)")
    for key in ("activation_alpha", "activation_beta"):
        if key in attrs:
            problems.append(f"{key} (activation parameters)")
    if "clip" in attrs:
        problems.append(f"clip={attrs['clip']} (fastgru does not clip the gates)")
    if len(ins) > 4 and ins[4] is not None:
        problems.append("a sequence_lens input (per-sample lengths)")
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        problems.append(f"layout={layout}")
    if problems:
        raise _Unsupported(f"{name} is not supported: " + "; ".join(problems))
    W = _const(ins[1], f"{name}: W")
    R = _const(ins[2], f"{name}: R")
    B = _const(ins[3], f"{name}: B") if len(ins) > 3 and ins[3] is not None else None
    h0 = ins[5] if len(ins) > 5 else None
    if isinstance(h0, _Const) and not np.any(h0.value):
        h0 = None
    if (isinstance(h0, _Data) and not h0.chain) or isinstance(h0, _InputPart):
        states.append(h0.source)  # a state input: predict is the run with zeros fed there
    elif h0 is not None and h0 is not _ZEROS:
        raise _Unsupported(f"{name}: its initial_h is not zero (nor a model input); fastgru "
                           "models start from a zero state")
    linear_before_reset = int(attrs.get("linear_before_reset", 0))
    try:
        weights = onnx_gru_to_keras(W, R, B, linear_before_reset)
    except ValueError as exc:
        raise _Unsupported(f"{name}: {exc}") from None
    if "hidden_size" in attrs and int(attrs["hidden_size"]) != weights[1].shape[0]:
        raise _Unsupported(f"{name}: hidden_size={attrs['hidden_size']} but R has "
                           f"{weights[1].shape[0]} units")
    time_ax, batch_ax = (0, 1) if layout == 0 else (1, 0)
    if len(x.axes) != 3 or x.axes[2] != "F":
        raise _Unsupported(f"{name}: its input has axes {x.axes}; a GRU reads (time, batch, "
                           "features) with the features last")
    t, b = x.axes[time_ax], x.axes[batch_ax]
    if (t, b) != ("T", "B") and not (t.startswith("in") and b.startswith("in")):
        raise _Unsupported(f"{name}: its input has axes {x.axes} but layout={layout} reads "
                           f"{('time', 'batch') if layout == 0 else ('batch', 'time')} first")
    spec = GRUSpec(*weights, reset_after=bool(linear_before_reset), return_sequences=True)
    chain = x.chain + (spec,)
    y_axes = ("T", "1", "B", "F") if layout == 0 else ("B", "T", "1", "F")
    h_axes = ("1", "B", "F") if layout == 0 else ("B", "1", "F")
    last_state = chain[:-1] + (replace(spec, return_sequences=False),)
    return [_Data(chain, y_axes, x.source), _Data(last_state, h_axes, x.source)]


def _reshape_axes(axes: Tuple[str, ...], shape: List[int], features: Optional[int],
                  allowzero: bool) -> Tuple[str, ...]:
    """The axes after a Reshape that only adds or drops size-one axes (else _Unsupported)."""
    kept = [a for a in axes if a != "1"]
    out, k, minus_one = [], 0, False
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            label = axes[i] if i < len(axes) else None
            if label is None:
                raise _Unsupported(f"Reshape to {shape}: 0 copies a missing axis")
        elif d == 1:
            label = "1"
        elif d == -1 and not minus_one:
            minus_one = True
            label = kept[k] if k < len(kept) else None
        elif features is not None and d == features and k < len(kept) and kept[k] == "F":
            label = "F"
        else:
            label = None
        if label is None:
            raise _Unsupported(f"Reshape of axes {axes} to {shape}: fastgru follows only reshapes "
                               "that add or drop size-one axes")
        if label != "1":
            if k >= len(kept) or kept[k] != label:
                raise _Unsupported(f"Reshape of axes {axes} to {shape} moves or merges axes")
            k += 1
        out.append(label)
    if k != len(kept):
        raise _Unsupported(f"Reshape of axes {axes} to {shape} merges axes")
    return tuple(out)


@dataclass(frozen=True)
class _At:
    """A node applied to the tensor ``x`` computed from the model input (input ``index``)."""

    node: Any
    ins: List[Any]
    attrs: Dict[str, Any]
    opset: int
    x: _Data
    index: int

    @property
    def rank(self) -> int:
        return len(self.x.axes)

    @property
    def features(self) -> Optional[int]:
        return self.x.chain[-1].units if self.x.chain else None

    def new(self, chain=None, axes=None) -> _Data:
        return _Data(tuple(self.x.chain if chain is None else chain),
                     tuple(self.x.axes if axes is None else axes), self.x.source)


def _pass_through(at: _At) -> List[Any]:  # Identity; Dropout, whose mask is no model result
    return [at.x] + [_Refused(f"{at.node.op_type} mask output")] * (len(at.node.output) - 1)


def _cast(at: _At) -> List[Any]:
    from onnx import TensorProto

    if at.attrs.get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        raise _Unsupported(f"Cast of the model's tensor to a non-float type ({at.attrs.get('to')})")
    return [at.x]


def _transpose(at: _At) -> List[Any]:
    perm = [_norm_axis(p, at.rank, "Transpose") for p in
            at.attrs.get("perm", list(range(at.rank))[::-1])]
    if sorted(perm) != list(range(at.rank)):
        raise _Malformed(f"Transpose perm {perm} for rank {at.rank}")
    return [at.new(axes=[at.x.axes[p] for p in perm])]


def _squeeze(at: _At) -> List[Any]:
    ins = at.ins
    axes = _int_list(ins[1], "Squeeze axes") if len(ins) > 1 and ins[1] is not None \
        else at.attrs.get("axes")
    if axes is None:
        raise _Unsupported("Squeeze without axes (it would also drop a batch of one)")
    axes = {_norm_axis(a, at.rank, "Squeeze") for a in axes}
    for a in axes:
        if at.x.axes[a] != "1":
            raise _Unsupported(f"Squeeze of axis {a}, which is {at.x.axes[a]!r}, not size one")
    return [at.new(axes=[l for i, l in enumerate(at.x.axes) if i not in axes])]


def _unsqueeze(at: _At) -> List[Any]:
    ins = at.ins
    axes = _int_list(ins[1], "Unsqueeze axes") if len(ins) > 1 and ins[1] is not None \
        else at.attrs.get("axes", [])
    out_rank = at.rank + len(axes)
    axes = sorted(_norm_axis(a, out_rank, "Unsqueeze") for a in axes)
    labels = list(at.x.axes)
    for a in axes:
        labels.insert(a, "1")
    return [at.new(axes=labels)]


def _reshape(at: _At) -> List[Any]:
    shape = _int_list(at.ins[1], "Reshape shape")
    return [at.new(axes=_reshape_axes(at.x.axes, shape, at.features,
                                      bool(at.attrs.get("allowzero", 0))))]


def _flatten(at: _At) -> List[Any]:
    axes = at.x.axes
    axis = _norm_axis(at.attrs.get("axis", 1), at.rank + 1, "Flatten") if at.rank else 0
    head = [l for l in axes[:axis] if l != "1"]
    tail = [l for l in axes[axis:] if l != "1"]
    if head not in ([], ["B"]) or tail not in ([], ["F"]):
        raise _Unsupported(f"Flatten(axis={axis}) of axes {axes} merges axes")
    return [at.new(axes=[head[0] if head else "1", tail[0] if tail else "1"])]


def _gather(at: _At) -> List[Any]:
    x = at.x
    axis = _norm_axis(at.attrs.get("axis", 0), at.rank, "Gather")
    idx = np.asarray(_const(at.ins[1], "Gather indices"))
    label = x.axes[axis]
    if idx.size != 1:
        raise _Unsupported(f"Gather of {idx.size} entries along axis {axis} ({label!r})")
    index = int(idx.reshape(-1)[0])
    keep = [] if idx.ndim == 0 else ["1"]
    axes = list(x.axes[:axis]) + keep + list(x.axes[axis + 1:])
    if label == "1" and index in (0, -1):
        return [at.new(axes=axes)]
    if label == "T" and index == -1:
        return [at.new(chain=_last_step(x, "Gather"), axes=axes)]
    reason = (f"Gather of index {index} along axis {axis} ({label!r}); fastgru reads the last "
              "time step (index -1) only")
    if not x.chain and label != "F":  # maybe one layer's initial state: the GRU will tell
        return [_InputPart(x.source, reason)]
    raise _Unsupported(reason)


def _slice(at: _At) -> List[Any]:
    starts, ends, axes, steps = _slice_args(at.ins, at.attrs, at.opset)
    chain, labels = at.x.chain, list(at.x.axes)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = _norm_axis(axis, at.rank, "Slice")
        label = labels[axis]
        whole = start in (0, -(2 ** 63)) and end >= 2 ** 31 - 1 and step == 1
        if whole or (label == "1" and start in (0, -1) and end >= 1 and step == 1):
            continue
        if label == "T" and start == -1 and end >= 2 ** 31 - 1 and step == 1:
            chain = _last_step(at.new(chain=chain), "Slice")
            labels[axis] = "1"
            continue
        reason = (f"Slice [{start}:{end}:{step}] along axis {axis} ({label!r}); fastgru reads "
                  "whole sequences or the last step ([-1:])")
        if not at.x.chain and label != "F":  # maybe one layer's initial state
            return [_InputPart(at.x.source, reason)]
        raise _Unsupported(reason)
    return [at.new(chain=chain, axes=labels)]


def _matmul(at: _At) -> List[Any]:
    if at.index != 0:
        raise _Unsupported("MatMul with the constant on the left")
    kernel = _const(at.ins[1], "MatMul weight")
    if kernel.ndim != 2 or at.x.axes[-1] != "F":
        raise _Unsupported(f"MatMul of axes {at.x.axes} by a constant of shape {kernel.shape}")
    return [at.new(chain=at.x.chain + (dense_spec(kernel),))]


def _gemm(at: _At) -> List[Any]:
    attrs, ins = at.attrs, at.ins
    if at.index != 0 or attrs.get("transA", 0):
        raise _Unsupported("Gemm whose A is not the model's tensor, or with transA=1")
    if at.x.axes != ("B", "F"):
        raise _Unsupported(f"Gemm of a tensor with axes {at.x.axes}")
    kernel = _const(ins[1], "Gemm B")
    kernel = (kernel.T if attrs.get("transB", 0) else kernel) * attrs.get("alpha", 1.0)
    chain = list(at.x.chain) + [dense_spec(kernel)]
    if len(ins) > 2 and ins[2] is not None:
        c = _feature_vector(_const(ins[2], "Gemm C"), at.new(axes=["B", "F"]), "Gemm C")
        chain = with_affine(chain, shift=c * attrs.get("beta", 1.0))
    return [at.new(chain=chain)]


def _arithmetic(at: _At) -> List[Any]:  # Add, Sub, Mul, Div by a constant
    op = at.node.op_type
    if len(at.ins) != 2:
        raise _Malformed(f"{op} with {len(at.ins)} inputs")
    c = _feature_vector(_const(at.ins[1 - at.index], f"the other {op} operand"), at.x, op)
    data_left = at.index == 0
    chain = at.x.chain
    if op == "Add":
        return [at.new(chain=with_affine(chain, shift=c))]
    if op == "Sub":
        return [at.new(chain=with_affine(chain, scale=1.0 if data_left else -1.0,
                                         shift=-c if data_left else c))]
    if op == "Mul":
        return [at.new(chain=with_affine(chain, scale=c))]
    if not data_left:
        raise _Unsupported("Div of a constant by the model's tensor")
    return [at.new(chain=with_affine(chain, scale=1.0 / c))]


def _activation(at: _At) -> List[Any]:  # Relu, Sigmoid, Tanh
    return [at.new(chain=with_activation(at.x.chain, at.node.op_type.lower()))]


def _softmax(at: _At) -> List[Any]:
    axis = _norm_axis(at.attrs.get("axis", -1 if at.opset >= 13 else 1), at.rank, "Softmax")
    if axis != at.rank - 1 or at.x.axes[-1] != "F":
        raise _Unsupported(f"Softmax over axis {axis} of axes {at.x.axes}; fastgru's softmax "
                           "is over the features (last axis)")
    return [at.new(chain=with_activation(at.x.chain, "softmax"))]


# What each op does to a tensor computed from the model input.
_DATA_OPS: Dict[str, Callable[[_At], List[Any]]] = {
    "Identity": _pass_through, "Dropout": _pass_through, "Cast": _cast,
    "Transpose": _transpose, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Reshape": _reshape,
    "Flatten": _flatten, "Gather": _gather, "Slice": _slice,
    "MatMul": _matmul, "Gemm": _gemm,
    "Add": _arithmetic, "Sub": _arithmetic, "Mul": _arithmetic, "Div": _arithmetic,
    "Relu": _activation, "Sigmoid": _activation, "Tanh": _activation, "Softmax": _softmax,
}


def _data_node(node, ins, attrs, opset: int) -> List[Any]:
    """A node applied to a tensor computed from the model input."""
    data_ids = [i for i, v in enumerate(ins) if isinstance(v, _Data)]
    if len(data_ids) > 1:
        raise _Unsupported(f"{node.op_type} node {node.name!r} combines two tensors computed "
                           "from the model inputs (branches and merges are not supported)")
    handler = _DATA_OPS.get(node.op_type)
    if handler is None:
        raise _Unsupported(
            f"ONNX op {node.op_type} (node {node.name!r}) on the model's path is not supported; "
            "from_onnx reads GRU, MatMul, Gemm, Add/Sub/Mul/Div by constants, Relu, Sigmoid, "
            "Tanh, Softmax and layout ops (Transpose, Squeeze, Unsqueeze, Reshape, Flatten, "
            "Gather/Slice of the last step, Identity, Dropout, Cast)"
        )
    return handler(_At(node, ins, attrs, opset, ins[data_ids[0]], data_ids[0]))


def _concat_node(node, ins, attrs) -> List[Any]:
    """Concat of model tensors along a size-one axis: a stack to pick one part from."""
    parts = [v for v in ins if v is not None]
    if not all(isinstance(v, _Data) for v in parts):
        raise _Unsupported(f"Concat node {node.name!r} joins the model's tensor with constants")
    rank = len(parts[0].axes)
    axis = _norm_axis(attrs.get("axis", 0), rank, "Concat")
    if any(p.axes != parts[0].axes for p in parts) or parts[0].axes[axis] != "1":
        raise _Unsupported(f"Concat node {node.name!r} joins tensors along an axis that is not "
                           "size one (branches and merges are not supported)")
    return [_Stack(tuple(parts), axis)]


def _stack_node(node, ins, attrs, opset: int) -> List[Any]:
    """A Gather or Slice that picks one part of a stack (e.g. ``h_n[-1]``: the last layer's)."""
    stack = ins[0]
    if not isinstance(stack, _Stack) or node.op_type not in ("Gather", "Slice"):
        raise _Unsupported(f"{node.op_type} node {node.name!r} reads the states of several GRU "
                           "layers at once; fastgru gives one (pick it, e.g. h_n[-1])")
    n = len(stack.parts)
    rank = len(stack.parts[0].axes)
    if node.op_type == "Gather":
        idx = np.asarray(_const(ins[1], "Gather indices"))
        if _norm_axis(attrs.get("axis", 0), rank, "Gather") == stack.axis and idx.size == 1:
            part = stack.parts[int(idx.reshape(-1)[0]) % n]
            return _data_node(node, [part, _Const(np.zeros_like(idx))], attrs, opset)
    else:
        starts, ends, axes, steps = _slice_args(ins, attrs, opset)
        if len(axes) == 1 and _norm_axis(axes[0], rank, "Slice") == stack.axis and steps == [1]:
            picked = range(n)[slice(starts[0], ends[0])]
            if len(picked) == 1:
                return [stack.parts[picked[0]]]
    raise _Unsupported(f"{node.op_type} node {node.name!r} does not pick a single part of the "
                       "stacked GRU states")


# ------------------------------------------------------------------- constants, evaluated bounded
def _shapes(values) -> List[Tuple[int, ...]]:
    return [np.shape(v) for v in values if v is not None]


def _broadcast_size(values, attrs) -> int:
    return math.prod(np.broadcast_shapes(*_shapes(values)))


def _input_size(values, attrs) -> int:
    return sum(math.prod(s) for s in _shapes(values))


def _gather_size(values, attrs) -> int:
    data, idx = values[0], values[1]
    axis = _norm_axis(attrs.get("axis", 0), max(data.ndim, 1), "Gather")
    return data.size // max(data.shape[axis] if data.ndim else 1, 1) * idx.size


def _shape_values(value, what: str) -> List[int]:
    dims = [int(d) for d in np.asarray(value).reshape(-1)]
    if len(dims) > 64 or any(d < 0 for d in dims):
        raise _Malformed(f"{what} {dims}")
    return dims


def _constant_of_shape_size(values, attrs) -> int:
    return math.prod(_shape_values(values[0], "ConstantOfShape shape"))


def _expand_size(values, attrs) -> int:
    shape = _shape_values(values[1], "Expand shape")
    return math.prod(np.broadcast_shapes(np.shape(values[0]), tuple(shape)))


def _tile_size(values, attrs) -> int:
    repeats = _shape_values(values[1], "Tile repeats")
    return np.size(values[0]) * math.prod(repeats)


def _range_size(values, attrs) -> int:
    start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in values[:3])
    if not (math.isfinite(start) and math.isfinite(limit) and math.isfinite(delta)) or delta == 0:
        raise _Malformed(f"Range({start}, {limit}, {delta})")
    return max(0, math.ceil((limit - start) / delta))


def _matmul_size(values, attrs) -> int:
    a, b = (np.asarray(v) for v in values[:2])
    if a.ndim < 1 or b.ndim < 1:
        raise _Malformed("MatMul of a scalar")
    k = a.shape[-1]
    a2 = a.shape if a.ndim > 1 else (1,) + a.shape
    b2 = b.shape if b.ndim > 1 else b.shape + (1,)
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    return math.prod(batch) * a2[-2] * b2[-1] * max(k, 1)  # the work, not just the result


def _gemm_size(values, attrs) -> int:
    a, b = (np.asarray(v) for v in values[:2])
    if a.ndim != 2 or b.ndim != 2:
        raise _Malformed("Gemm of non-matrices")
    return a.shape[0] * a.shape[1] * b.shape[0 if attrs.get("transB", 0) else 1]


def _no_size(values, attrs) -> int:
    return 0


_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Neg", "Abs", "Sqrt", "Reciprocal", "Exp",
                "Log", "Relu", "Sigmoid", "Tanh", "Softmax", "Clip", "Where", "Equal", "Less",
                "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Max", "Min",
                "Floor", "Ceil", "Sign", "Cast", "Identity")
_LAYOUT = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Concat", "Split",
           "Shape", "Size", "Dropout")

# The ops whose constant inputs from_onnx evaluates (with ONNX's reference evaluator), each with
# the number of elements it would produce (or the work it would do), checked against a budget
# before it runs. Nothing else is evaluated: control flow (Loop, Scan, If), random ops and any
# op not listed here are refused when the model's output needs them, and never run otherwise.
_CONST_OPS: Dict[str, Callable[[List[Any], Dict[str, Any]], int]] = {
    **{op: _broadcast_size for op in _ELEMENTWISE},
    **{op: _input_size for op in _LAYOUT},
    "Constant": _no_size, "Gather": _gather_size, "ConstantOfShape": _constant_of_shape_size,
    "Expand": _expand_size, "Tile": _tile_size, "Range": _range_size, "MatMul": _matmul_size,
    "Gemm": _gemm_size,
}


def _evaluate_constant(node, ins, attrs, opsets, budget: int) -> List[Any]:
    """A node whose inputs are all constants, evaluated if it is listed in ``_CONST_OPS`` and its
    result fits ``budget`` elements."""
    op = node.op_type
    size_of = _CONST_OPS.get(op)
    if size_of is None:
        raise _Unsupported(f"constant {op} node {node.name!r}: from_onnx evaluates only "
                           f"{sorted(_CONST_OPS)} on constants")
    values = [None if v is None else v.value for v in ins]
    size = size_of(values, attrs)
    if size > budget:
        raise _Unsupported(f"constant {op} node {node.name!r} would make {size} elements, more "
                           f"than the model's own weights justify ({budget})")
    from onnx.reference import ReferenceEvaluator

    try:
        names = [n for n, v in zip(node.input, ins) if v is not None]
        results = ReferenceEvaluator(node, opsets=opsets).run(
            None, {n: v.value for n, v in zip(names, ins) if v is not None})
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot follow this node"
        raise _Unsupported(f"cannot evaluate constant {op} node: {exc}") from None
    return [_Const(np.asarray(r)) for r in results]


def _other_node(node, ins, attrs, opsets, budget: int) -> List[Any]:
    """A node whose inputs are constants, runtime shapes or zero tensors."""
    present = [v for v in ins if v is not None]
    if all(isinstance(v, _Const) for v in present):
        return _evaluate_constant(node, ins, attrs, opsets, budget)
    op = node.op_type
    if op == "ConstantOfShape":
        value = attrs.get("value")
        if value is not None:
            from onnx import numpy_helper

            value = numpy_helper.to_array(value)
        if value is None or not np.any(value):
            return [_ZEROS]
        raise _Unsupported("ConstantOfShape with a non-zero value")
    first = ins[0] if ins else None
    first_is_zero = first is _ZEROS or (isinstance(first, _Const) and not np.any(first.value))
    if op in _ZERO_KEEPING and first_is_zero:
        return [_ZEROS]
    if op == "Concat" and all(v is _ZEROS or (isinstance(v, _Const) and not np.any(v.value))
                              for v in present):
        return [_ZEROS]
    if op == "Mul" and any(v is _ZEROS for v in present):
        return [_ZEROS]
    if all(v is _SHAPE or isinstance(v, _Const) for v in present):
        return [_SHAPE] * len(node.output)
    raise _Unsupported(f"{op} node {node.name!r} on values computed from runtime shapes")


# ---------------------------------------------------------------------------------- the graph
def _load(model_or_path):
    """The ModelProto and how to name it in errors. A file must be a regular file; external
    data (tensors in other files) is refused rather than read from wherever it points."""
    import onnx

    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        where = f"ONNX model {path!r}"
        with os.fdopen(open_regular_file(path), "rb") as f:
            data = f.read()
    elif isinstance(model_or_path, (bytes, bytearray)):
        where, data = "the ONNX model (bytes)", bytes(model_or_path)
    elif isinstance(model_or_path, onnx.ModelProto):
        return model_or_path, "the ONNX model"
    else:
        raise TypeError(f"from_onnx takes a path, bytes or an onnx.ModelProto; got "
                        f"{type(model_or_path).__name__}")
    try:
        return onnx.load_from_string(data), where
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ValueError(f"{where} is damaged or not an ONNX model ({type(exc).__name__}: "
                         f"{exc})") from None


def _needed_nodes(graph, output: str) -> List[Any]:
    """The nodes ``output`` depends on, in graph order: nothing else is evaluated."""
    producer = {}
    for node in graph.node:
        for name in node.output:
            if name:
                producer.setdefault(name, node)
    needed, todo = set(), [output]
    while todo:
        node = producer.get(todo.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            todo.extend(n for n in node.input if n)
    return [node for node in graph.node if id(node) in needed]


def _initial_values(graph) -> Tuple[Dict[str, Any], int]:
    """Initializers as constants, and the element budget for computed constants: what the
    weights themselves hold plus room for shape arithmetic."""
    from onnx import TensorProto, numpy_helper

    values: Dict[str, Any] = {}
    total = 0
    for init in graph.initializer:
        if init.data_location == TensorProto.EXTERNAL:
            raise ValueError(f"initializer {init.name!r} keeps its data in another file "
                             "(external data is not read)")
        try:
            array = numpy_helper.to_array(init)
        except (TypeError, KeyError, AttributeError) as exc:  # e.g. data_type UNDEFINED
            raise ValueError(f"initializer {init.name!r} cannot be read as an array (data_type "
                             f"{init.data_type}): {exc}") from None
        total += array.size
        values[init.name] = _Const(array)
    return values, total + _CONSTANT_ROOM


def _run_node(node, ins, opset: int, opsets, budget: int, states: List[str]) -> List[Any]:
    """What ``node`` gives, by the kind of its inputs."""
    refused = next((v for v in ins if isinstance(v, _Refused)), None)
    if refused is not None:
        return [refused] * len(node.output)
    if node.domain not in ("", "ai.onnx"):
        raise _Unsupported(f"op {node.domain}.{node.op_type} (node {node.name!r}) is not a "
                           "standard ONNX op")
    attrs = _attrs(node)
    if node.op_type in ("Shape", "Size") and not all(isinstance(v, _Const) for v in ins):
        return [_SHAPE]
    part = next((v for i, v in enumerate(ins) if isinstance(v, _InputPart)
                 and not (node.op_type == "GRU" and i == 5)), None)
    if part is not None:  # only a GRU's initial_h (input 5) may read a part of an input
        raise _Unsupported(part.reason)
    if node.op_type == "GRU":
        return _gru_node(node, ins, attrs, states)
    if any(isinstance(v, _Stack) for v in ins):
        return _stack_node(node, ins, attrs, opset)
    if node.op_type == "Concat" and sum(isinstance(v, _Data) for v in ins) > 1:
        return _concat_node(node, ins, attrs)
    if any(isinstance(v, _Data) for v in ins):
        return _data_node(node, ins, attrs, opset)
    return _other_node(node, ins, attrs, opsets, budget)


def from_onnx(model_or_path, output: Optional[str] = None):
    """A built fastgru ``Sequential`` computing an ONNX model's output from its input.

    Reads graphs of ONNX ``GRU`` ops (forward, Sigmoid/Tanh, either ``linear_before_reset``,
    ``layout`` 0 or 1) with an optional head of MatMul/Gemm (+Add) and Relu / Sigmoid / Tanh /
    Softmax, whatever the exporter put around them to move axes (see the module docstring):
    ``to_onnx`` / ``to_onnx_gru`` output and ``torch.onnx.export`` of a GRU + Linear alike.
    ``output`` names the graph output to compute when there are several.

    The fastgru model works batch-major: ``x (batch, time, features)`` in, ``(batch, units)`` or
    ``(batch, time, units)`` out. For a time-major ONNX model (input ``(time, batch, ...)``, or
    a sequence output ``(time, batch, ...)``) feed it ``x.transpose(1, 0, 2)`` and read its
    sequences batch-major; the numbers are the same. Initial states must be zero
    or come from another model input, whole or a slice of it per layer as PyTorch exports
    ``h0`` (``predict`` then equals feeding zeros there;
    ``model.stream().reset(states)`` sets them). Size-one axes of the output (ONNX's direction
    axis) are dropped.

    Only the nodes the output depends on are looked at, and only a listed set of cheap ops is
    evaluated on constants, each within a size budget (see ``_CONST_OPS``): an untrusted model
    cannot make the import run long or allocate much.

    Raises NotImplementedError naming the op or attribute for what fastgru would compute
    differently: bidirectional or reverse GRUs, other activations or their alpha/beta, clip,
    sequence_lens, non-zero constant initial states, unknown ops, branches and merges.
    Raises ValueError naming the file for a damaged or malformed model, and for a path that is
    not a regular file.
    """
    proto, where = _load(model_or_path)
    try:
        return _import(proto, output)
    except ValueError as exc:
        raise ValueError(f"from_onnx({where}): {exc}") from exc
    except NotImplementedError as exc:
        raise NotImplementedError(f"from_onnx({where}): {exc}") from exc


def _import(proto, output: Optional[str]):
    from onnx import TensorProto

    graph = proto.graph
    names = [o.name for o in graph.output]
    if output is None:
        if len(names) != 1:
            raise ValueError(f"the ONNX model has outputs {names}; pick one with output=NAME")
        output = names[0]
    elif output not in names:
        raise ValueError(f"the ONNX model has no output {output!r}; its outputs are {names}")
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    opsets = {"": opset}
    values, budget = _initial_values(graph)
    inputs = [i for i in graph.input if i.name not in values]
    for i in inputs:
        dims = i.type.tensor_type.shape.dim
        rank = len(dims) if i.type.tensor_type.HasField("shape") else 3
        if rank < 1:
            values[i.name] = _Refused(f"input {i.name!r} is a scalar", ValueError)
            continue
        values[i.name] = _Data((), tuple(f"in{k}" for k in range(rank - 1)) + ("F",), i.name)
    states: List[str] = []
    for node in _needed_nodes(graph, output):
        missing = [n for n in node.input if n and n not in values]
        try:
            if missing:
                raise _Malformed(f"node {node.name!r} ({node.op_type}) reads {missing}, which "
                                 "no earlier node makes (the graph is not in order or incomplete)")
            outs = _run_node(node, [values[n] if n else None for n in node.input], opset,
                             opsets, budget, states)
        except _Unsupported as exc:
            outs = [_Refused(str(exc))] * len(node.output)
        except (_Malformed, ValueError, TypeError, KeyError, IndexError, OverflowError,
                ZeroDivisionError, AttributeError) as exc:
            # a spec check (shapes, a layer before any GRU) or a malformed node
            outs = [_Refused(f"{node.op_type} node {node.name!r}: {exc}", ValueError)] * \
                len(node.output)
        for name, value in zip(node.output, outs):
            if name:
                values[name] = value

    y = values.get(output)
    if isinstance(y, _Refused):
        raise y.error(y.reason)
    if not isinstance(y, _Data) or not any(isinstance(s, GRUSpec) for s in y.chain):
        raise NotImplementedError(f"output {output!r} is not computed by a GRU from the model "
                                  "input")
    kept = [a for a in y.axes if a != "1"]
    if kept not in (["B", "F"], ["B", "T", "F"], ["T", "B", "F"]):
        raise NotImplementedError(f"output {output!r} has axes {y.axes}; fastgru gives (batch, "
                                  "features) or (batch, time, features)")
    if y.source in states:
        raise NotImplementedError(f"input {y.source!r} is both the data and a state")
    source = next(i for i in inputs if i.name == y.source)
    dims = source.type.tensor_type.shape.dim
    chain = list(y.chain)
    if dims and dims[-1].HasField("dim_value") and dims[-1].dim_value != chain[0].input_size:
        raise ValueError(f"input {y.source!r} has {dims[-1].dim_value} features but the first "
                         f"layer takes {chain[0].input_size}")
    double = source.type.tensor_type.elem_type == TensorProto.DOUBLE
    return build_sequential(chain, dtype=np.float64 if double else np.float32, what="from_onnx")
