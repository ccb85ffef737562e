"""ONNX Runtime's rows: the ONNX ``GRU`` op (+ MatMul for the Dense head) exported by
``fastgru.interop``, through ``InferenceSession.run``."""
from __future__ import annotations

from typing import List

import numpy as np

from .harness import Candidate, Peer, Runner, Workload, carried_state_runner


def candidates(w: Workload) -> List[Candidate]:
    import onnx  # noqa: F401 - interop builds the model with it: missing, the peer is skipped
    import onnxruntime as ort

    from .. import interop

    def session(proto, nt):
        so = ort.SessionOptions()
        so.intra_op_num_threads = nt
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        return ort.InferenceSession(proto.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])

    # One row (B, C) is fastest with one intra-op thread (its default pool costs more than
    # it splits), so those rows use one at every thread count: the peer at its best.
    one_row_note = "intra_op_num_threads=1: ONNX Runtime's best for one row"
    d = w.data
    c: List[Candidate] = []
    if w.key == "B":
        x, ws = d["x"], d["weights"]

        def build(nt):
            s = session(interop.to_onnx_gru(*ws[:3], dense=(ws[3], ws[4])), 1)
            feed = {"x": x, "h0": np.zeros((1, ws[1].shape[0]), np.float32)}
            f = lambda: s.run(["prediction"], feed)[0]  # noqa: E731
            return Runner(f, lambda: [f()], note=one_row_note)

        c.append(Candidate("onnxruntime GRU op + MatMul (session.run)", "onnxruntime", build))
    elif w.key == "C":
        seq, ws = d["seq"], d["weights"]

        def build(nt):
            s = session(interop.to_onnx_gru(*ws[:3], dense=(ws[3], ws[4])), 1)

            def step(x, h):
                y, h = s.run(["prediction", "h_last"], {"x": x, "h0": h})
                return y, h

            runner = carried_state_runner([v.reshape(1, 1, -1) for v in seq],
                                          lambda: np.zeros((1, ws[1].shape[0]), np.float32), step)
            runner.note = one_row_note
            return runner

        c.append(Candidate("onnxruntime GRU op, initial_h carried", "onnxruntime", build))
    elif w.key == "D.fwd":
        x, ws = d["x"], d["weights"]

        def build(nt):
            s = session(interop.to_onnx_gru(*ws), nt)
            feed = {"x": x, "h0": np.zeros((x.shape[0], ws[1].shape[0]), np.float32)}
            f = lambda: s.run(["output", "h_last"], feed)  # noqa: E731
            return Runner(f, f)

        c.append(Candidate("onnxruntime GRU op (session.run)", "onnxruntime", build))
    return c


PEER = Peer("onnxruntime", "onnxruntime", candidates, absent={
    "A": "no training in ONNX Runtime's inference package",
    "D.fwd+bwd": "no backward in ONNX Runtime's inference package",
})
