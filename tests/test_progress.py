"""fit(verbose=...): a live Keras-style bar on a terminal, plain lines elsewhere."""
import io
import sys

import numpy as np

import fastgru as fg
from fastgru.progress import ProgressBar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _model_and_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4, 2)).astype(np.float32)
    y = rng.standard_normal((40, 1)).astype(np.float32)
    m = fg.Sequential([fg.GRU(3, seed=0), fg.Dense(1, seed=0)])
    m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return m, X, y


def test_verbose_1_on_a_terminal_draws_a_bar_with_steps_and_loss(monkeypatch):
    m, X, y = _model_and_data()
    out = _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    m.fit(X, y, epochs=2, batch_size=8, verbose=1, validation_split=0.2)
    text = out.getvalue()
    assert text.count("Epoch ") == 2 and "Epoch 2/2" in text
    final = [line.split("\r")[-1] for line in text.split("\n") if "[====" in line]
    assert len(final) == 2
    assert final[0].startswith("4/4 [" + "=" * 30 + "] - ")
    assert "ms/step" in final[0] or "us/step" in final[0] or "s/step" in final[0]
    assert " - loss: " in final[0] and " - mae: " in final[0] and " - val_loss: " in final[0]


def test_the_bar_redraws_in_place_with_eta_and_running_loss():
    out = _Terminal()
    bar = ProgressBar(10, live=True, stream=out, interval=0.0)
    bar.update(3, 0.5)
    bar.update(4, 0.25)
    bar.finish({"loss": 0.125})
    text = out.getvalue()
    assert text.startswith("\r 3/10 [========>.....................] - ETA: ")
    assert "\r 4/10 [" in text and "loss: 0.2500" in text
    assert text.endswith("loss: 0.1250\n") and text.count("\n") == 1  # one line, redrawn


def test_verbose_1_without_a_terminal_prints_plain_lines(capsys):
    m, X, y = _model_and_data()
    m.fit(X, y, epochs=2, batch_size=8, verbose=1)
    text = capsys.readouterr().out
    assert "\r" not in text and "[" not in text
    lines = text.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[1].startswith("5/5 - loss: ") and len(lines) == 4


def test_verbose_2_is_plain_even_on_a_terminal(monkeypatch):
    m, X, y = _model_and_data()
    out = _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    m.fit(X, y, epochs=1, batch_size=8, verbose=2)
    assert "\r" not in out.getvalue() and out.getvalue().splitlines()[1].startswith("5/5 - loss:")
