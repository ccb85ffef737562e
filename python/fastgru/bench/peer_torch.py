"""PyTorch's rows: ``nn.GRU`` + ``nn.Linear`` as a PyTorch user writes them, on the same weights
(converted with ``fastgru.interop``), at ``torch.set_num_threads(n)``."""
from __future__ import annotations

from typing import List

from .harness import Candidate, Peer, Runner, Workload, carried_state_runner
from .workloads import adam_epsilon


def candidates(w: Workload) -> List[Candidate]:
    import torch

    from .. import interop

    def threads(n):
        torch.set_num_threads(n)

    def gru_module(kernel, recurrent, bias):
        return interop.to_torch((kernel, recurrent, bias))

    def dense_module(kernel, bias):  # Keras Dense(1) weights as nn.Linear
        fc = torch.nn.Linear(kernel.shape[0], kernel.shape[1])
        with torch.no_grad():
            fc.weight.copy_(torch.from_numpy(kernel.T.copy()))
            fc.bias.copy_(torch.from_numpy(bias))
        return fc

    class Net(torch.nn.Module):  # what a PyTorch user writes for GRU(H) -> Dense(1)
        def __init__(self, ws):
            super().__init__()
            self.gru = gru_module(*ws[:3])
            self.fc = dense_module(*ws[3:5])

        def forward(self, x):
            out, _ = self.gru(x)
            return self.fc(out[:, -1])

    d = w.data
    c: List[Candidate] = []
    if w.key == "A":
        X, y, ws, lr, batch, n = d["X"], d["y"], d["weights"], d["lr"], d["batch"], d["check_n"]
        eps = adam_epsilon()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def make():
            net = Net(ws).train()
            return net, torch.optim.Adam(net.parameters(), lr=lr, eps=eps), torch.nn.MSELoss()

        def epoch(net, opt, loss_fn, order):
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

        def build(nt):
            threads(nt)

            def check():
                net, opt, loss_fn = make()
                epoch(net, opt, loss_fn, torch.arange(n))
                with torch.inference_mode():
                    return [net(Xt[:n]).numpy()]

            net, opt, loss_fn = make()
            return Runner(lambda: epoch(net, opt, loss_fn, torch.randperm(len(Xt))), check,
                          note=f"Adam eps={eps:g} to match fastgru")

        c.append(Candidate("torch nn.GRU+Linear, Adam loop", "torch", build))
    elif w.key == "B":
        x, ws = d["x"], d["weights"]

        def build(nt):
            threads(nt)
            net = Net(ws).eval()

            def f():
                with torch.inference_mode():
                    return net(torch.from_numpy(x)).numpy()

            return Runner(f, lambda: [f()])

        c.append(Candidate("torch nn.GRU+Linear (inference_mode)", "torch", build))
    elif w.key == "C":
        seq, ws = d["seq"], d["weights"]

        def build(nt):
            threads(nt)
            gru = gru_module(*ws[:3])
            cell = torch.nn.GRUCell(gru.input_size, gru.hidden_size)
            fc = dense_module(*ws[3:5])
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(gru, name + "_l0"))

            def step(x, h):
                with torch.inference_mode():
                    h = cell(x, h)
                    return fc(h).numpy(), h

            return carried_state_runner([torch.from_numpy(v.reshape(1, -1)) for v in seq],
                                         lambda: torch.zeros(1, gru.hidden_size), step)

        c.append(Candidate("torch GRUCell+Linear (inference_mode)", "torch", build))
    elif w.key == "D.fwd":
        x, ws = d["x"], d["weights"]

        def build(nt):
            threads(nt)
            gru, xt = gru_module(*ws), torch.from_numpy(x)

            def f():
                with torch.inference_mode():
                    out, h = gru(xt)
                return [out.numpy(), h[0].numpy()]

            return Runner(f, f)

        c.append(Candidate("torch nn.GRU (inference_mode)", "torch", build))
    elif w.key == "D.fwd+bwd":
        x, ws, d_out = d["x"], d["weights"], d["d_out"]

        def build(nt):
            threads(nt)
            gru = gru_module(*ws).train()
            xt, gt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(d_out)

            def f():
                xt.grad = None
                for p in gru.parameters():
                    p.grad = None
                out, _ = gru(xt)
                out.backward(gt)

            def check():
                f()
                k, r, b = interop.torch_to_keras(gru.weight_ih_l0.grad, gru.weight_hh_l0.grad,
                                                 gru.bias_ih_l0.grad, gru.bias_hh_l0.grad)
                return [xt.grad.numpy(), k, r, b]

            return Runner(f, check)

        c.append(Candidate("torch nn.GRU forward+backward (autograd)", "torch", build))
    return c


PEER = Peer("torch", "torch", candidates)
