"""Time two builds of fastgru's extension against each other on GRU forward shapes.

    python benchmarks/compare_builds.py OLD/_core*.so NEW/_core*.so [--threads 1]
        [--shape H,B,I,T ...] [--rounds 3] [--train | --predict]

With --train it times the training kernels instead: forward_train + backward (dx, dh0 and
every weight gradient, for a given dL/d(outputs) and dL/d(last state)), by default on the seed
epoch's batch (H,B,I,T = 50,32,1,100), with reset_after=True and False, and compares all
their outputs. With --predict it times ``Sequential.predict`` of GRU(H) -> Dense(1) (the C++
inference model: a one-window call by default, (1, 100, 1) at H = 50), this repository's
Python package running on each build's extension.

Two builds cannot share a process (pybind11 registers each C++ type once per interpreter, so
the second module silently runs the first one's code): each build runs in its own process,
the builds take turns for --rounds rounds, and the best time of each is kept. Outputs of the
two builds are compared too (max |difference|).
"""
import argparse
import importlib.util
import json
import subprocess
import sys
import timeit
from pathlib import Path

import numpy as np

DEFAULT_SHAPES = ["50,1,1,100", "32,1,1,100", "64,1,1,100", "50,1,1,1", "50,32,1,100"]
DEFAULT_TRAIN_SHAPES = ["50,32,1,100", "50,7,1,100", "64,32,8,50"]
DEFAULT_PREDICT_SHAPES = ["50,1,1,100", "32,1,1,100", "100,1,1,100"]
PYTHON_PACKAGE = Path(__file__).resolve().parents[1] / "python"


def _cases(shapes, train):
    """(H, B, I, T, reset_after) for each shape: training covers both variants."""
    return [(*shape, reset_after) for shape in shapes
            for reset_after in ((True, False) if train else (True,))]


def _predict_model(core, kernel, recurrent, bias, rng):
    """GRU -> Dense(1) with these GRU weights, run by ``core`` (the build under test): the
    package imports the extension it finds in ``sys.modules``."""
    sys.modules["fastgru._core"] = core
    if str(PYTHON_PACKAGE) not in sys.path:
        sys.path.insert(0, str(PYTHON_PACKAGE))
    import fastgru as fg

    units, inputs = recurrent.shape[0], kernel.shape[0]
    model = fg.Sequential([fg.GRU(units, reset_after=bias.ndim == 2), fg.Dense(1)])
    model.build((None, None, inputs))
    dense = (rng.standard_normal((units, 1)) * 0.1).astype(np.float32)
    model.set_weights([kernel, recurrent, bias, dense, np.zeros(1, np.float32)])
    return model


def _time_one_build(path, threads, shapes, train=False, predict=False):
    """In a child process: seconds per PackedGRU.forward (with ``train``: forward_train +
    backward; with ``predict``: Sequential.predict) for each shape, and the outputs."""
    spec = importlib.util.spec_from_file_location("_core", path)
    core = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)
    core.set_num_threads(threads)
    rng = np.random.default_rng(0)
    times, outputs = [], []
    for units, batch, inputs, steps, reset_after in _cases(shapes, train):
        kernel = (rng.standard_normal((inputs, 3 * units)) * 0.3).astype(np.float32)
        recurrent = (rng.standard_normal((units, 3 * units)) * 0.1).astype(np.float32)
        bias = (rng.standard_normal((2, 3 * units) if reset_after else (3 * units,)) * 0.1
                ).astype(np.float32)
        x = rng.standard_normal((batch, steps, inputs)).astype(np.float32)
        h0 = np.zeros((batch, units), np.float32)
        packed = core.PackedGRU(kernel, recurrent, bias, reset_after)
        number = max(3, 200_000 // (batch * units * steps))
        if train:
            d_out = rng.standard_normal((batch, steps, units)).astype(np.float32)
            d_h_last = rng.standard_normal((batch, units)).astype(np.float32)

            def call():
                out, h_last, *tape = packed.forward_train(x, h0)
                return [out, h_last, *packed.backward(x, *tape, d_out, d_h_last, True)]
        elif predict:
            model = _predict_model(core, kernel, recurrent, bias, rng)
            number = max(3, 2_000_000 // (batch * units * steps))  # ~10 ms of one-window calls

            def call():
                return [model.predict(x)]
        else:
            def call():
                return packed.forward(x, h0)[:1]
        times.append(min(timeit.repeat(call, number=number, repeat=5)) / number)
        outputs.append(np.concatenate([a.ravel() for a in call()]).tolist())
    return {"times": times, "outputs": outputs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shape", action="append", help="H,B,I,T (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--train", action="store_true",
                      help="time forward_train + backward instead of forward")
    mode.add_argument("--predict", action="store_true",
                      help="time Sequential.predict of GRU -> Dense(1) instead of forward")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    default = (DEFAULT_TRAIN_SHAPES if args.train else
               DEFAULT_PREDICT_SHAPES if args.predict else DEFAULT_SHAPES)
    shapes = [tuple(int(v) for v in s.split(",")) for s in (args.shape or default)]
    if args.child:
        print(json.dumps(_time_one_build(args.old, args.threads, shapes, args.train,
                                         args.predict)))
        return 0
    cases = _cases(shapes, args.train)
    samples = {"old": [], "new": []}  # per round: seconds per call of each case
    outputs = {}
    for _ in range(args.rounds):
        for name in ("old", "new"):
            cmd = [sys.executable, __file__, getattr(args, name), "-", "--child",
                   "--threads", str(args.threads)]
            cmd += ["--train"] if args.train else ["--predict"] if args.predict else []
            cmd += [a for s in shapes for a in ("--shape", ",".join(map(str, s)))]
            result = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                               check=True).stdout)
            samples[name].append(result["times"])
            outputs[name] = result["outputs"]
    # The best round is what the build can do; the median of the rounds says how far the
    # host's noise moves it (identical builds differ by a few percent between processes).
    best = {name: np.min(rounds, axis=0) for name, rounds in samples.items()}
    median = {name: np.median(rounds, axis=0) for name, rounds in samples.items()}
    for i, case in enumerate(cases):
        old, new = best["old"][i], best["new"][i]
        diff = np.max(np.abs(np.subtract(outputs["old"][i], outputs["new"][i])))
        same = "bit-identical" if outputs["old"][i] == outputs["new"][i] else "DIFFERENT"
        label = ",".join(map(str, case[:4])) + ("" if case[4] else " reset_after=False")
        print(f"H,B,I,T={label}: old {old * 1e6:.2f} us  new {new * 1e6:.2f} us"
              f"  old/new {old / new:.2f} (medians {median['old'][i] * 1e6:.2f} and "
              f"{median['new'][i] * 1e6:.2f} us: {median['old'][i] / median['new'][i]:.2f})"
              f"  max|diff| {diff:.1e} ({same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
