"""fastgru's own rows: the public API (``Sequential``, ``stream()``) and the bare kernels
(``PackedGRU``). The first fastgru implementation of a workload is every peer's baseline."""
from __future__ import annotations

from typing import List

import numpy as np

from .harness import Candidate, Peer, Runner, Workload, carried_state_runner
from .training import KernelTrainer
from .workloads import adam_epsilon


def fastgru_sequential(units, weights, steps, lr=None):
    """A fastgru ``Sequential([GRU(units), Dense(1)])`` holding ``weights`` (compiled with Adam
    when ``lr`` is given)."""
    import fastgru as fg

    model = fg.Sequential([fg.GRU(units), fg.Dense(1)])
    if lr is not None:
        model.compile(optimizer=fg.Adam(learning_rate=lr), loss="mse")
    model.build((None, steps, 1))
    model.set_weights([np.array(w) for w in weights])
    return model


def candidates(w: Workload) -> List[Candidate]:
    import fastgru as fg

    threads = fg.set_num_threads
    c: List[Candidate] = []
    d = w.data
    if w.key == "A":
        X, y, ws, lr, batch, n = d["X"], d["y"], d["weights"], d["lr"], d["batch"], d["check_n"]
        units, steps = ws[1].shape[0], X.shape[1]

        def sequential(nt):
            threads(nt)

            def check():
                m = fastgru_sequential(units, ws, steps, lr)
                m.fit(X[:n], y[:n], epochs=1, batch_size=batch, shuffle=False, verbose=0)
                return [m.predict(X[:n])]

            m = fastgru_sequential(units, ws, steps, lr)
            return Runner(lambda: m.fit(X, y, epochs=1, batch_size=batch, shuffle=True, verbose=0),
                          check)

        def kernels(nt):
            threads(nt)
            eps = adam_epsilon()

            def check():
                t = KernelTrainer(ws, lr, eps)
                t.fit_epoch(X[:n], y[:n], batch)
                return [t.predict(X[:n])]

            t, rng = KernelTrainer(ws, lr, eps), np.random.default_rng(0)
            return Runner(lambda: t.fit_epoch(X, y, batch, rng), check)

        c.append(Candidate("fastgru Sequential.fit", "fastgru", sequential))
        c.append(Candidate("fastgru PackedGRU loop (kernels + NumPy Dense, fastgru Adam)",
                           "fastgru", kernels))
    elif w.key == "B":
        x, ws = d["x"], d["weights"]
        kernel, recurrent, bias, dk, db = ws

        def predict(nt):
            threads(nt)
            m = fastgru_sequential(recurrent.shape[0], ws, x.shape[1])
            return Runner(lambda: m.predict(x), lambda: [m.predict(x)])

        def packed(nt):
            threads(nt)
            p = fg.PackedGRU(kernel, recurrent, bias)
            f = lambda: p.forward(x)[1] @ dk + db  # noqa: E731
            return Runner(f, lambda: [f()])

        c.append(Candidate("fastgru Sequential.predict", "fastgru", predict))
        c.append(Candidate("fastgru PackedGRU.forward + NumPy Dense", "fastgru", packed))
    elif w.key == "C":
        seq, ws = d["seq"], d["weights"]
        kernel, recurrent, bias, dk, db = ws

        def stream(nt):
            threads(nt)
            st = fastgru_sequential(recurrent.shape[0], ws, 1).stream()

            def check():
                st.reset()
                return [np.concatenate([np.asarray(st.step(v)).reshape(1, -1) for v in seq])]

            # made beforehand, as the peers' runners do theirs (indexing seq would make a view
            # per step, in the timed call)
            readings = list(seq)
            state = {"i": 0}

            def step():
                state["i"] = (state["i"] + 1) % len(readings)
                return st.step(readings[state["i"]])

            return Runner(step, check)

        def packed(nt):
            threads(nt)
            p = fg.PackedGRU(kernel, recurrent, bias)

            def step(x, h):
                _, h = p.forward(x, h)
                return h @ dk + db, h

            return carried_state_runner(seq.reshape(len(seq), 1, 1, 1),
                                        lambda: np.zeros((1, recurrent.shape[0]), np.float32),
                                        step)

        c.append(Candidate("fastgru stream().step", "fastgru", stream))
        c.append(Candidate("fastgru PackedGRU.forward T=1 + NumPy Dense", "fastgru", packed))
    elif w.key == "D.fwd":
        x, ws = d["x"], d["weights"]

        def fwd(nt):
            threads(nt)
            p = fg.PackedGRU(*ws)
            return Runner(lambda: p.forward(x), lambda: list(p.forward(x)))

        c.append(Candidate("fastgru PackedGRU.forward", "fastgru", fwd))
    elif w.key == "D.fwd+bwd":
        x, ws, d_out = d["x"], d["weights"], d["d_out"]

        def train(nt):
            threads(nt)
            p = fg.PackedGRU(*ws)

            def f():
                _, _, tape = p.forward_train(x)
                g = p.backward(tape, d_out=d_out)
                return [g.dx, g.dkernel, g.drecurrent_kernel, g.dbias]

            return Runner(f, f)

        c.append(Candidate("fastgru PackedGRU.forward_train+backward", "fastgru", train))
    return c


PEER = Peer("fastgru", "fastgru", candidates)
