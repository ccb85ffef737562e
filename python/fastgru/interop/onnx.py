"""ONNX <-> fastgru: the standard ONNX ``GRU`` op, one per layer, and a Dense head.

Export (``to_onnx_gru`` for one set of weights, ``to_onnx`` for a model) writes time-major
ONNX GRU ops (``layout=0``: ONNX Runtime's CPU GRU does not implement ``layout=1``) with
Transpose nodes around them, so the graph input is batch-first ``x (batch, time, features)``
like fastgru's. Batch and time are dynamic.

Import (``from_onnx``) runs the graph abstractly, tensor by tensor: constants are evaluated
(ONNX's reference evaluator), values computed from runtime shapes are only good for building
zero initial states, and the tensor that descends from the model input carries the fastgru
layers it has been through plus what each of its axes is (batch, time, features, or a size-one
axis). That reads graphs from other exporters too (``torch.onnx.export``: Transpose, GRU,
Squeeze, Gather of the last step, Gemm) and refuses, naming it, whatever fastgru would compute
differently. onnx is imported only inside the functions.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._chain import GRUSpec, Spec, build_sequential, chain_of, dense_spec, with_activation, \
    with_affine
from ._layout import check_keras_weights, keras_to_onnx_gru, onnx_gru_to_keras

__all__ = ["to_onnx_gru", "to_onnx", "from_onnx"]

_OPSET = 17


# ================================================================================== export
class _GraphBuilder:
    """Nodes and initializers with unique names, and the GRU / Dense pieces both exporters use."""

    def __init__(self, dtype):
        from onnx import TensorProto

        self.dtype = np.dtype(dtype)
        elems = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
        if self.dtype not in elems:
            raise ValueError(f"dtype must be float32 or float64; got {self.dtype}")
        self.elem = elems[self.dtype]
        self.nodes: list = []
        self.initializers: list = []
        self._taken: set = set()

    def _name(self, hint: str) -> str:
        name, k = hint, 0
        while name in self._taken:
            k += 1
            name = f"{hint}_{k}"
        self._taken.add(name)
        return name

    def constant(self, hint: str, array) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def axes(self, *axes: int) -> str:
        return self.constant("axes_" + "_".join(map(str, axes)), np.array(axes, np.int64))

    def add(self, op: str, inputs: Sequence[str], hint: str, out: Optional[str] = None,
            **attrs) -> str:
        """Append a one-output node; returns the output's name (``out``, else one from ``hint``)."""
        from onnx import helper

        output = out or self._name(hint)
        self._taken.add(output)
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=self._name(hint + "_op"),
                                           **attrs))
        return output

    def gru(self, x_time_major: str, weights, reset_after: bool, initial_h: str = "",
            hint: str = "gru") -> Tuple[str, str]:
        """An ONNX GRU op: ``Y (T, 1, B, H)`` and ``Y_h (1, B, H)`` (names)."""
        from onnx import helper

        W, R, B = keras_to_onnx_gru(*weights, reset_after=reset_after, dtype=self.dtype)
        inputs = [x_time_major, self.constant(f"{hint}_W", W), self.constant(f"{hint}_R", R),
                  self.constant(f"{hint}_B", B), "", initial_h]
        Y, Y_h = self._name(f"{hint}_Y"), self._name(f"{hint}_Y_h")
        self.nodes.append(helper.make_node(
            "GRU", inputs if initial_h else inputs[:4], [Y, Y_h], name=self._name(hint),
            hidden_size=int(R.shape[1] // 3), linear_before_reset=int(bool(reset_after)),
            direction="forward"))
        return Y, Y_h

    def dense(self, x: str, kernel, bias, activation: str = "linear", hint: str = "dense",
              out: Optional[str] = None) -> str:
        """``activation(x @ kernel + bias)`` on the last axis of ``x`` (any rank)."""
        mm = self.add("MatMul", [x, self.constant(f"{hint}_kernel", kernel.astype(self.dtype))],
                      f"{hint}_matmul")
        op = {"linear": None, "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
              "softmax": "Softmax"}[activation]
        y = self.add("Add", [mm, self.constant(f"{hint}_bias", bias.astype(self.dtype))],
                     f"{hint}_add", out=None if op else out)
        if op is None:
            return y
        return self.add(op, [y], f"{hint}_{activation}", out=out,
                        **({"axis": -1} if op == "Softmax" else {}))

    def model(self, inputs, outputs, name: str, opset: int):
        import onnx
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="fastgru"
        )
        model.ir_version = min(model.ir_version, 10)  # readable by older ONNX Runtime releases
        onnx.checker.check_model(model)
        return model


def to_onnx_gru(
    kernel,
    recurrent_kernel,
    bias,
    reset_after: bool = True,
    *,
    batch_first: bool = True,
    dense: Optional[Tuple[Any, Any]] = None,
    opset: int = _OPSET,
    dtype=np.float32,
    name: str = "fastgru_gru",
):
    """An ``onnx.ModelProto`` with one ONNX ``GRU`` op holding these Keras-layout weights.

    Graph inputs: ``x`` (B, T, I) (or (T, B, I) with ``batch_first=False``) and ``h0`` (B, H).
    Graph outputs: ``output`` (B, T, H) (or (T, B, H)), ``h_last`` (B, H), and ``prediction``
    (B, O) = ``h_last @ dense_kernel + dense_bias`` when ``dense=(kernel (H, O), bias (O,))``.
    ``reset_after`` maps to ``linear_before_reset`` (1 / 0). Batch and time are dynamic.
    Feed ``h0`` zeros for a fresh state; keep ``h_last`` to carry state between calls.
    For a whole fastgru model with a single input ``x`` use ``to_onnx``.
    """
    from onnx import helper

    kernel, recurrent_kernel, bias = check_keras_weights(kernel, recurrent_kernel, bias, reset_after)
    b = _GraphBuilder(dtype)
    units, inputs = recurrent_kernel.shape[0], kernel.shape[0]
    x_tm = b.add("Transpose", ["x"], "x_time_major", perm=[1, 0, 2]) if batch_first else "x"
    h0 = b.add("Unsqueeze", ["h0", b.axes(0)], "h0_directions")
    Y, Y_h = b.gru(x_tm, (kernel, recurrent_kernel, bias), reset_after, initial_h=h0)
    Y_tm = b.add("Squeeze", [Y, b.axes(1)], "output_time_major")  # (T, B, H)
    if batch_first:
        b.add("Transpose", [Y_tm], "output", out="output", perm=[1, 0, 2])
    else:
        b.add("Identity", [Y_tm], "output", out="output")
    b.add("Squeeze", [Y_h, b.axes(0)], "h_last", out="h_last")
    x_shape = ["batch", "time", inputs] if batch_first else ["time", "batch", inputs]
    y_shape = ["batch", "time", units] if batch_first else ["time", "batch", units]
    outputs = [
        helper.make_tensor_value_info("output", b.elem, y_shape),
        helper.make_tensor_value_info("h_last", b.elem, ["batch", units]),
    ]
    if dense is not None:
        dk, db = (np.asarray(a, b.dtype) for a in dense)
        if dk.ndim != 2 or dk.shape[0] != units or db.shape != (dk.shape[1],):
            raise ValueError(
                f"dense must be (kernel ({units}, O), bias (O,)); got {dk.shape}, {db.shape}"
            )
        b.dense("h_last", dk, db, out="prediction")
        outputs.append(helper.make_tensor_value_info("prediction", b.elem, ["batch", dk.shape[1]]))
    return b.model(
        [helper.make_tensor_value_info("x", b.elem, x_shape),
         helper.make_tensor_value_info("h0", b.elem, ["batch", units])],
        outputs, name, opset,
    )


def to_onnx(model, path=None, *, opset: int = _OPSET, name: str = "fastgru"):
    """An ``onnx.ModelProto`` computing ``model.predict``: one ONNX ``GRU`` op per GRU layer
    (``linear_before_reset`` = ``reset_after``), MatMul + Add (+ Sigmoid / Tanh / Relu /
    Softmax) per Dense layer.

    ``model`` is a built fastgru ``Sequential`` (or a GRU layer, or a list of fastgru layers).
    Graph input ``x`` (batch, time, features), output ``y``: (batch, units) or, when the last
    GRU returns sequences, (batch, time, units); batch and time are dynamic. The GRUs start
    from a zero state, as ``predict`` does. Written to ``path`` too when given.
    """
    import onnx
    from onnx import helper

    chain = chain_of(model, "to_onnx")
    b = _GraphBuilder(chain[0].kernel.dtype)
    t = b.add("Transpose", ["x"], "x_time_major", perm=[1, 0, 2])
    has_time = True  # t is (T, B, F) while True, (B, F) after a GRU that returns its last state
    for k, spec in enumerate(chain):
        if isinstance(spec, GRUSpec):
            Y, Y_h = b.gru(t, spec.weights, spec.reset_after, hint=f"gru{k}")
            if spec.return_sequences:
                t = b.add("Squeeze", [Y, b.axes(1)], f"gru{k}_sequence")
            else:
                t = b.add("Squeeze", [Y_h, b.axes(0)], f"gru{k}_last_state")
                has_time = False
        else:
            t = b.dense(t, spec.kernel, spec.bias, spec.activation, hint=f"dense{k}")
    if has_time:
        b.add("Transpose", [t], "y", out="y", perm=[1, 0, 2])
    else:
        b.add("Identity", [t], "y", out="y")
    units = chain[-1].units
    proto = b.model(
        [helper.make_tensor_value_info("x", b.elem, ["batch", "time", chain[0].input_size])],
        [helper.make_tensor_value_info("y", b.elem, ["batch", "time", units] if has_time
                                       else ["batch", units])],
        name, opset,
    )
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto


# ================================================================================== import
class _Unsupported(Exception):
    """What a node does has no fastgru equivalent (the message says what and why)."""


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
class _Refused:
    reason: str


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
    if isinstance(h0, _Data) and not h0.chain:
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


def _data_node(node, ins, attrs, opset: int) -> List[Any]:
    """A node applied to a tensor computed from the model input."""
    op = node.op_type
    data_ids = [i for i, v in enumerate(ins) if isinstance(v, _Data)]
    if len(data_ids) > 1:
        raise _Unsupported(f"{op} node {node.name!r} combines two tensors computed from the model "
                           "inputs (branches and merges are not supported)")
    x: _Data = ins[data_ids[0]]
    rank = len(x.axes)
    features = x.chain[-1].units if x.chain else None
    new = lambda chain=x.chain, axes=x.axes: _Data(tuple(chain), tuple(axes), x.source)  # noqa: E731
    n_out = len(node.output)

    if op in ("Identity", "Dropout"):  # Dropout's mask output is not part of a model's result
        return [x] + [_Refused(f"{op} mask output")] * (n_out - 1)
    if op == "Cast":
        from onnx import TensorProto

        if attrs.get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
            raise _Unsupported(f"Cast of the model's tensor to a non-float type ({attrs.get('to')})")
        return [x]
    if op == "Transpose":
        perm = attrs.get("perm", list(range(rank))[::-1])
        return [new(axes=[x.axes[p] for p in perm])]
    if op == "Squeeze":
        axes = _int_list(ins[1], "Squeeze axes") if len(ins) > 1 and ins[1] is not None \
            else attrs.get("axes")
        if axes is None:
            raise _Unsupported("Squeeze without axes (it would also drop a batch of one)")
        axes = {_norm_axis(a, rank, "Squeeze") for a in axes}
        for a in axes:
            if x.axes[a] != "1":
                raise _Unsupported(f"Squeeze of axis {a}, which is {x.axes[a]!r}, not size one")
        return [new(axes=[l for i, l in enumerate(x.axes) if i not in axes])]
    if op == "Unsqueeze":
        axes = _int_list(ins[1], "Unsqueeze axes") if len(ins) > 1 and ins[1] is not None \
            else attrs.get("axes", [])
        out_rank = rank + len(axes)
        axes = sorted(_norm_axis(a, out_rank, "Unsqueeze") for a in axes)
        labels = list(x.axes)
        for a in axes:
            labels.insert(a, "1")
        return [new(axes=labels)]
    if op == "Reshape":
        shape = _int_list(ins[1], "Reshape shape")
        return [new(axes=_reshape_axes(x.axes, shape, features, bool(attrs.get("allowzero", 0))))]
    if op == "Flatten":
        axis = _norm_axis(attrs.get("axis", 1), rank + 1, "Flatten") if rank else 0
        head = [l for l in x.axes[:axis] if l != "1"]
        tail = [l for l in x.axes[axis:] if l != "1"]
        if head not in ([], ["B"]) or tail not in ([], ["F"]):
            raise _Unsupported(f"Flatten(axis={axis}) of axes {x.axes} merges axes")
        return [new(axes=[head[0] if head else "1", tail[0] if tail else "1"])]
    if op == "Gather":
        axis = _norm_axis(attrs.get("axis", 0), rank, "Gather")
        idx = np.asarray(_const(ins[1], "Gather indices"))
        label = x.axes[axis]
        if idx.size != 1:
            raise _Unsupported(f"Gather of {idx.size} entries along axis {axis} ({label!r})")
        index = int(idx.reshape(-1)[0])
        keep = [] if idx.ndim == 0 else ["1"]
        axes = list(x.axes[:axis]) + keep + list(x.axes[axis + 1:])
        if label == "1" and index in (0, -1):
            return [new(axes=axes)]
        if label == "T" and index == -1:
            return [new(chain=_last_step(x, "Gather"), axes=axes)]
        raise _Unsupported(f"Gather of index {index} along axis {axis} ({label!r}); fastgru reads "
                           "the last time step (index -1) only")
    if op == "Slice":
        starts, ends, axes, steps = _slice_args(ins, attrs, opset)
        chain, labels = x.chain, list(x.axes)
        for start, end, axis, step in zip(starts, ends, axes, steps):
            axis = _norm_axis(axis, rank, "Slice")
            label = labels[axis]
            whole = start in (0, -(2 ** 63)) and end >= 2 ** 31 - 1 and step == 1
            if whole or (label == "1" and start in (0, -1) and end >= 1 and step == 1):
                continue
            if label == "T" and start == -1 and end >= 2 ** 31 - 1 and step == 1:
                chain = _last_step(new(chain=chain), "Slice")
                labels[axis] = "1"
                continue
            raise _Unsupported(f"Slice [{start}:{end}:{step}] along axis {axis} ({label!r}); "
                               "fastgru reads whole sequences or the last step ([-1:])")
        return [new(chain=chain, axes=labels)]
    if op == "MatMul":
        if data_ids[0] != 0:
            raise _Unsupported("MatMul with the constant on the left")
        kernel = _const(ins[1], "MatMul weight")
        if kernel.ndim != 2 or x.axes[-1] != "F":
            raise _Unsupported(f"MatMul of axes {x.axes} by a constant of shape {kernel.shape}")
        return [new(chain=x.chain + (dense_spec(kernel),))]
    if op == "Gemm":
        if data_ids[0] != 0 or attrs.get("transA", 0):
            raise _Unsupported("Gemm whose A is not the model's tensor, or with transA=1")
        if x.axes != ("B", "F"):
            raise _Unsupported(f"Gemm of a tensor with axes {x.axes}")
        kernel = _const(ins[1], "Gemm B")
        kernel = (kernel.T if attrs.get("transB", 0) else kernel) * attrs.get("alpha", 1.0)
        chain = list(x.chain) + [dense_spec(kernel)]
        if len(ins) > 2 and ins[2] is not None:
            c = _feature_vector(_const(ins[2], "Gemm C"), new(axes=["B", "F"]), "Gemm C")
            chain = with_affine(chain, shift=c * attrs.get("beta", 1.0))
        return [new(chain=chain)]
    if op in ("Add", "Sub", "Mul", "Div"):
        c = _feature_vector(_const(ins[1 - data_ids[0]], f"the other {op} operand"), x, op)
        data_left = data_ids[0] == 0
        if op == "Add":
            return [new(chain=with_affine(x.chain, shift=c))]
        if op == "Sub":
            return [new(chain=with_affine(x.chain, scale=1.0 if data_left else -1.0,
                                          shift=-c if data_left else c))]
        if op == "Mul":
            return [new(chain=with_affine(x.chain, scale=c))]
        if not data_left:
            raise _Unsupported("Div of a constant by the model's tensor")
        return [new(chain=with_affine(x.chain, scale=1.0 / c))]
    if op in ("Relu", "Sigmoid", "Tanh"):
        return [new(chain=with_activation(x.chain, op.lower()))]
    if op == "Softmax":
        axis = _norm_axis(attrs.get("axis", -1 if opset >= 13 else 1), rank, "Softmax")
        if axis != rank - 1 or x.axes[-1] != "F":
            raise _Unsupported(f"Softmax over axis {axis} of axes {x.axes}; fastgru's softmax "
                               "is over the features (last axis)")
        return [new(chain=with_activation(x.chain, "softmax"))]
    raise _Unsupported(
        f"ONNX op {op} (node {node.name!r}) on the model's path is not supported; from_onnx reads "
        "GRU, MatMul, Gemm, Add/Sub/Mul/Div by constants, Relu, Sigmoid, Tanh, Softmax and "
        "layout ops (Transpose, Squeeze, Unsqueeze, Reshape, Flatten, Gather/Slice of the last "
        "step, Identity, Dropout, Cast)"
    )


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


def _other_node(node, ins, attrs, opsets) -> List[Any]:
    """A node whose inputs are constants, runtime shapes or zero tensors."""
    present = [v for v in ins if v is not None]
    if all(isinstance(v, _Const) for v in present):
        from onnx.reference import ReferenceEvaluator

        try:
            names = [n for n, v in zip(node.input, ins) if v is not None]
            results = ReferenceEvaluator(node, opsets=opsets).run(
                None, {n: v.value for n, v in zip(names, present)})
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot follow this node"
            raise _Unsupported(f"cannot evaluate constant {node.op_type} node: {exc}") from None
        return [_Const(np.asarray(r)) for r in results]
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


def _load(model_or_path):
    import onnx

    if isinstance(model_or_path, (str, os.PathLike)):
        return onnx.load(os.fspath(model_or_path))
    if isinstance(model_or_path, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model_or_path))
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    raise TypeError(f"from_onnx takes a path, bytes or an onnx.ModelProto; got "
                    f"{type(model_or_path).__name__}")


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
    or come from another model input (``predict`` then equals feeding zeros there;
    ``model.stream().reset(states)`` sets them). Size-one axes of the output (ONNX's direction
    axis) are dropped.

    Raises NotImplementedError naming the op or attribute for what fastgru would compute
    differently: bidirectional or reverse GRUs, other activations or their alpha/beta, clip,
    sequence_lens, non-zero constant initial states, unknown ops, branches and merges.
    """
    from onnx import TensorProto

    proto = _load(model_or_path)
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), _OPSET)
    opsets = {"": opset}
    values: Dict[str, Any] = {}
    from onnx import numpy_helper

    for init in graph.initializer:
        values[init.name] = _Const(numpy_helper.to_array(init))
    inputs = [i for i in graph.input if i.name not in values]
    for i in inputs:
        dims = i.type.tensor_type.shape.dim
        rank = len(dims) if i.type.tensor_type.HasField("shape") else 3
        values[i.name] = _Data((), tuple(f"in{k}" for k in range(rank - 1)) + ("F",), i.name)
    states: List[str] = []
    for node in graph.node:
        ins = [values[n] if n else None for n in node.input]
        refused = next((v for v in ins if isinstance(v, _Refused)), None)
        try:
            if refused is not None:
                outs = [refused] * len(node.output)
            elif node.domain not in ("", "ai.onnx"):
                raise _Unsupported(f"op {node.domain}.{node.op_type} (node {node.name!r}) is "
                                   "not a standard ONNX op")
            elif node.op_type in ("Shape", "Size") and not all(isinstance(v, _Const) for v in ins):
                outs = [_SHAPE]
            elif node.op_type == "GRU":
                outs = _gru_node(node, ins, _attrs(node), states)
            elif any(isinstance(v, _Stack) for v in ins):
                outs = _stack_node(node, ins, _attrs(node), opset)
            elif node.op_type == "Concat" and sum(isinstance(v, _Data) for v in ins) > 1:
                outs = _concat_node(node, ins, _attrs(node))
            elif any(isinstance(v, _Data) for v in ins):
                outs = _data_node(node, ins, _attrs(node), opset)
            else:
                outs = _other_node(node, ins, _attrs(node), opsets)
        except _Unsupported as exc:
            outs = [_Refused(str(exc))] * len(node.output)
        except ValueError as exc:  # a spec check (shapes, a layer before any GRU)
            outs = [_Refused(f"{node.op_type} node {node.name!r}: {exc}")] * len(node.output)
        for name, value in zip(node.output, outs):
            if name:
                values[name] = value

    names = [o.name for o in graph.output]
    if output is None:
        if len(names) != 1:
            raise ValueError(f"the ONNX model has outputs {names}; pick one with output=NAME")
        output = names[0]
    elif output not in names:
        raise ValueError(f"the ONNX model has no output {output!r}; its outputs are {names}")
    y = values[output]
    if isinstance(y, _Refused):
        raise NotImplementedError(f"from_onnx: {y.reason}")
    if not isinstance(y, _Data) or not any(isinstance(s, GRUSpec) for s in y.chain):
        raise NotImplementedError(f"from_onnx: output {output!r} is not computed by a GRU from "
                                  "the model input")
    kept = [a for a in y.axes if a != "1"]
    if kept not in (["B", "F"], ["B", "T", "F"], ["T", "B", "F"]):
        raise NotImplementedError(f"from_onnx: output {output!r} has axes {y.axes}; fastgru "
                                  "gives (batch, features) or (batch, time, features)")
    if y.source in states:
        raise NotImplementedError(f"from_onnx: input {y.source!r} is both the data and a state")
    source = next(i for i in inputs if i.name == y.source)
    dims = source.type.tensor_type.shape.dim
    chain = list(y.chain)
    if dims and dims[-1].HasField("dim_value") and dims[-1].dim_value != chain[0].input_size:
        raise ValueError(f"from_onnx: input {y.source!r} has {dims[-1].dim_value} features but "
                         f"the first layer takes {chain[0].input_size}")
    double = source.type.tensor_type.elem_type == TensorProto.DOUBLE
    return build_sequential(chain, dtype=np.float64 if double else np.float32, what="from_onnx")
