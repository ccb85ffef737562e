"""Workload A's training loop written directly on the kernels: the yardstick that
``Sequential.fit`` is compared with."""
from __future__ import annotations

import numpy as np


class KernelTrainer:
    """GRU -> Dense(1), MSE, Adam written directly on ``fastgru.PackedGRU``: the kernels with the
    least Python around them (what ``Sequential.fit`` does, minus its bookkeeping)."""

    def __init__(self, weights, lr=1e-3, eps=1e-7):
        import fastgru as fg

        self.params = [np.array(w, np.float32) for w in weights]
        self.packed = fg.PackedGRU(*self.params[:3])
        self.optimizers = [fg.Adam(learning_rate=lr, epsilon=eps) for _ in self.params]

    def train_batch(self, xb, yb):
        kernel, recurrent, bias, dk, db = self.params
        _, h, tape = self.packed.forward_train(xb, outputs=False)
        diff = h @ dk + db - yb
        d_pred = (2.0 / diff.size) * diff
        d_h = d_pred @ dk.T
        g = self.packed.backward(tape, d_h_last=d_h, need_dx=False)
        grads = [g.dkernel, g.drecurrent_kernel, g.dbias, h.T @ d_pred, d_pred.sum(0)]
        for opt, p, grad in zip(self.optimizers, self.params, grads):
            opt.step(p, grad)
        self.packed.update(kernel, recurrent, bias)
        return float(np.mean(diff * diff))

    def fit_epoch(self, X, y, batch, rng=None):
        order = np.arange(len(X)) if rng is None else rng.permutation(len(X))
        for i in range(0, len(X), batch):
            idx = order[i:i + batch]
            self.train_batch(X[idx], y[idx])

    def predict(self, X):
        dk, db = self.params[3:]
        return self.packed.forward(X)[1] @ dk + db
