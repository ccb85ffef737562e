"""fastgru -> ONNX: the standard ONNX ``GRU`` op, one per layer, and a Dense head.

``to_onnx_gru`` (one set of weights) and ``to_onnx`` (a model) write time-major ONNX GRU ops
(``layout=0``: ONNX Runtime's CPU GRU does not implement ``layout=1``) with Transpose nodes
around them, so the graph input is batch-first ``x (batch, time, features)`` like fastgru's.
Batch and time are dynamic. The way back is ``onnx_import.from_onnx``. onnx is imported only
inside the functions.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ._chain import GRUSpec, chain_of, with_dtype
from ._layout import check_keras_weights, keras_to_onnx_gru

__all__ = ["to_onnx_gru", "to_onnx", "OPSET"]

OPSET = 17  # what the exporters write (the importer reads other opsets too)


class _GraphBuilder:
    """Nodes and initializers with unique names, and the GRU / Dense pieces both exporters use."""

    def __init__(self, dtype):
        from onnx import TensorProto

        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from None
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
    opset: int = OPSET,
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


def to_onnx(model, path=None, *, opset: int = OPSET, name: str = "fastgru", dtype=None):
    """An ``onnx.ModelProto`` computing ``model.predict``: one ONNX ``GRU`` op per GRU layer
    (``linear_before_reset`` = ``reset_after``), MatMul + Add (+ Sigmoid / Tanh / Relu /
    Softmax) per Dense layer.

    ``model`` is a built fastgru ``Sequential`` (or a GRU layer, or a list of fastgru layers).
    Graph input ``x`` (batch, time, features), output ``y``: (batch, units) or, when the last
    GRU returns sequences, (batch, time, units); batch and time are dynamic. The GRUs start
    from a zero state, as ``predict`` does. Written to ``path`` too when given.

    ``dtype`` (default: the model's) sets the graph's element type: ``"float32"`` exports a
    float64 model for runtimes whose GRU has no double kernel (ONNX Runtime's CPU GRU runs
    float32 only: "GRU operator does not support double yet").
    """
    import onnx
    from onnx import helper

    chain = chain_of(model, "to_onnx")
    b = _GraphBuilder(chain[0].kernel.dtype if dtype is None else dtype)  # checks dtype
    chain = with_dtype(chain, b.dtype)
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
