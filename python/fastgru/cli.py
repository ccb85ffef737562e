"""The ``fastgru`` command.

    fastgru demo [--epochs 10] [--plot FILE.png] [--threads N] [--days N] [--test-days 365]
    fastgru fit CSV --target COL [--date-column COL] [--window 100] [--horizon 1] [--units 50]
                    [--epochs 10] [--batch-size 32] -o MODEL
    fastgru predict MODEL [CSV] [--steps K] [-o OUT.csv]
    fastgru info
    fastgru bench ...            (arguments go to fastgru.bench)

``main(argv)`` returns the exit status: 0 on success, 2 for a usage or data error (a message on
stderr, no traceback), 1 when the model does not fit in memory (one line too).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

__all__ = ["main"]

_DATE_NAMES = ("date", "datetime", "timestamp", "time", "ds")


class UserError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


# ------------------------------------------------------------------------------------- helpers


def _degree() -> str:
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "\u00b0C".encode(enc)
    except (UnicodeEncodeError, LookupError):
        return " C"
    return "\u00b0C"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _set_threads(n: Optional[int]) -> None:
    if n is not None:
        from ._config import set_num_threads

        set_num_threads(n)


def _threads() -> int:
    from ._config import get_num_threads

    return get_num_threads()


def read_series_csv(path: str, date_column: Optional[str] = None, columns=None):
    """Read a CSV for forecasting: the date column becomes a sorted-check DatetimeIndex.

    ``date_column`` None looks for a column named date/datetime/timestamp/time/ds (any case);
    without one the rows are numbered. ``columns`` keeps only those (plus the date).
    """
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} as CSV: {exc}") from None
    if date_column is None:
        found = [c for c in df.columns if str(c).strip().lower() in _DATE_NAMES]
        date_column = found[0] if found else None
    elif date_column not in df.columns:
        raise UserError(f"date column {date_column!r} not in {path}; columns are {list(df.columns)}")
    if date_column is not None:
        try:
            dates = pd.to_datetime(df[date_column])
        except (ValueError, TypeError) as exc:
            raise UserError(f"cannot parse column {date_column!r} of {path} as dates: {exc}") from None
        df = df.drop(columns=[date_column])
        df.index = pd.DatetimeIndex(dates, name=date_column)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise UserError(f"columns {missing} not in {path}; columns are {list(df.columns)}")
        df = df[list(columns)]
    return df


def _split(values: Optional[List[str]]):
    if not values:
        return None
    out = []
    for v in values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


# ------------------------------------------------------------------------------------- commands


def _cmd_demo(args) -> int:
    from .datasets import load_daily_temperatures
    from .forecaster import GRUForecaster

    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UserError("--plot needs matplotlib: pip install matplotlib "
                            "(or pip install 'fastgru[plot]')") from None
    _set_threads(args.threads)
    deg = _degree()
    start = time.perf_counter()
    series = load_daily_temperatures()["Temp"]
    if args.days is not None:
        if args.days < args.window + 2:
            raise UserError(f"--days {args.days} is too few for --window {args.window}")
        series = series.iloc[: args.days]
    test = args.test_days if args.test_days is not None else min(365, len(series) // 10)
    if test < 1 or len(series) - test < args.window + 1:
        raise UserError(f"--test-days {test} leaves too few days to train on "
                        f"({len(series)} days, window {args.window})")
    n_train = len(series) - test
    print(f"fastgru demo: GRU({args.units}) -> Dense(1), Adam + MSE, on {len(series)} daily "
          f"temperatures {series.index[0]:%Y-%m-%d} .. {series.index[-1]:%Y-%m-%d} "
          "(synthetic; see fastgru/data/README.md)")
    print(f"train: first {n_train} days ({n_train - args.window} windows of {args.window}); "
          f"test: last {test} days, one step ahead; threads: {_threads()}")
    sys.stdout.flush()

    forecaster = GRUForecaster(window=args.window, units=args.units, epochs=args.epochs,
                               batch_size=args.batch_size, seed=args.seed,
                               verbose=0 if args.quiet else 2)
    t_fit = time.perf_counter()
    result = forecaster.backtest(series, test_size=test)
    fit_seconds = time.perf_counter() - t_fit
    print(f"test RMSE: GRU {result.rmse:.3f}{deg} vs persistence {result.persistence_rmse:.3f}{deg} "
          f"(skill {result.skill:+.1%}); MAE: GRU {result.mae:.3f}{deg} vs persistence "
          f"{result.persistence_mae:.3f}{deg}")
    nxt = forecaster.predict(steps=1, data=series)
    print(f"next-day forecast for {nxt.index[0]:%Y-%m-%d}: {nxt.iloc[0]:.2f}{deg} "
          f"(from the last {args.window} days)")
    if args.plot:
        _plot(result, nxt, args.plot, deg)
        print(f"plot saved to {args.plot}")
    total = time.perf_counter() - start
    print(f"time: {fit_seconds:.2f} s to fit and test, {total:.2f} s in all")
    return 0


def _plot(result, nxt, path, deg):
    from matplotlib.figure import Figure

    frame = result.predictions
    fig = Figure(figsize=(11, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(frame.index, frame["actual"], lw=1.0, color="0.35", label="actual")
    ax.plot(frame.index, frame["forecast"], lw=1.2, color="tab:blue",
            label=f"GRU one step ahead (RMSE {result.rmse:.2f})")
    ax.plot(frame.index, frame["persistence"], lw=0.8, color="tab:orange", alpha=0.6,
            label=f"persistence (RMSE {result.persistence_rmse:.2f})")
    ax.plot(nxt.index, nxt.to_numpy(), "o", color="tab:red", label="next-day forecast")
    ax.set_ylabel(f"temperature ({deg.strip()})")
    ax.set_title("fastgru demo: forecast vs actual on the held-out days")
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot save the plot to {path}: {exc}") from None


def _cmd_fit(args) -> int:
    from .forecaster import GRUForecaster

    targets = _split(args.target)
    features = _split(args.features)
    if features is not None:
        features = list(dict.fromkeys(features + [t for t in targets if t not in features]))
    df = read_series_csv(args.csv, args.date_column, features)
    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise UserError(f"target column(s) {missing} not in {args.csv}; columns are "
                        f"{list(df.columns)}")
    if features is None:
        import pandas as pd

        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
                   and not pd.api.types.is_bool_dtype(df[c])]
        dropped = [c for c in df.columns if c not in numeric]
        if dropped and args.verbose:
            print(f"ignoring non-numeric columns {dropped}", file=sys.stderr)
        df = df[numeric]
    _set_threads(args.threads)
    target = targets[0] if len(targets) == 1 else targets
    forecaster = GRUForecaster(
        window=args.window, horizon=args.horizon, units=args.units, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, scaler=args.scaler,
        target=target, strategy=args.strategy, validation_split=args.validation_split,
        seed=args.seed, fillna=args.fillna, verbose=2 if args.verbose else 0,
    )
    t0 = time.perf_counter()
    forecaster.fit(df)
    seconds = time.perf_counter() - t0
    forecaster.save(args.output)
    loss = forecaster.history_.history.get("loss", [])
    last = f", final loss {loss[-1]:.4g}" if loss else ""
    print(f"fitted on {len(df)} rows x {df.shape[1]} column(s) -> {targets} in {seconds:.2f} s"
          f"{last}; saved to {args.output}")
    return 0


def _cmd_predict(args) -> int:
    from .forecaster import GRUForecaster

    try:
        forecaster = GRUForecaster.load(args.model)
    except FileNotFoundError:
        raise UserError(f"no such model file: {args.model}") from None
    data = None
    if args.csv is not None:
        names = forecaster.feature_names_in_
        columns = names if names and all(isinstance(c, str) for c in names) else None
        data = read_series_csv(args.csv, args.date_column, columns)
    _set_threads(args.threads)
    forecast = forecaster.predict(steps=args.steps, data=data)
    if args.output:
        forecast.to_csv(args.output)
        print(f"wrote {len(forecast)} forecast row(s) to {args.output}")
    else:
        sys.stdout.write(forecast.to_csv())
    return 0


def _cmd_info(args) -> int:
    from . import __version__
    from ._config import show_config

    print(f"fastgru {__version__}")
    print(f"python {sys.version.split()[0]} on {sys.platform}")
    try:
        import numpy
        import pandas

        print(f"numpy {numpy.__version__}, pandas {pandas.__version__}")
    except ImportError:
        pass
    show_config()  # SIMD path, compiler, OpenMP and threads
    return 0


def _cmd_bench(argv: List[str]) -> int:
    try:
        from .bench import main as bench_main
    except ImportError as exc:
        raise UserError(f"fastgru bench is not available: {exc}") from None
    return int(bench_main(argv) or 0)


# ------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgru", description="Fast GRU time-series forecasting (C++ SIMD + OpenMP kernels).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train and test a GRU on the bundled daily temperatures",
                          description="The Keras recipe end to end on the bundled (synthetic) "
                          "daily temperatures: MinMax scaling, windows of 100 days, GRU(50) + "
                          "Dense(1), Adam + MSE; tested one step ahead on the held-out tail "
                          "against the persistence forecast.")
    demo.add_argument("--epochs", type=_positive_int, default=10)
    demo.add_argument("--batch-size", type=_positive_int, default=32)
    demo.add_argument("--window", type=_positive_int, default=100)
    demo.add_argument("--units", type=_positive_int, default=50)
    demo.add_argument("--days", type=_positive_int, default=None,
                      help="use only the first N days (default: all 8,000)")
    demo.add_argument("--test-days", type=_positive_int, default=None,
                      help="held-out tail (default: 365, or 10%% of a shorter series)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=_positive_int, default=None)
    demo.add_argument("--plot", metavar="FILE.png", default=None,
                      help="save forecast vs actual (needs matplotlib)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")

    fit = sub.add_parser("fit", help="fit a forecaster on a CSV and save it")
    fit.add_argument("csv", metavar="CSV")
    fit.add_argument("--target", action="append", required=True, metavar="COL",
                     help="column to forecast (repeat or comma-separate for several)")
    fit.add_argument("--features", action="append", metavar="COL", default=None,
                     help="input columns (default: every numeric column)")
    fit.add_argument("--date-column", default=None, metavar="COL",
                     help="the dates (default: a column named Date/date/timestamp/ds if any)")
    fit.add_argument("--window", type=_positive_int, default=100)
    fit.add_argument("--horizon", type=_positive_int, default=1)
    fit.add_argument("--strategy", choices=("recursive", "direct"), default="recursive")
    fit.add_argument("--units", type=_positive_int, default=50)
    fit.add_argument("--epochs", type=_positive_int, default=10)
    fit.add_argument("--batch-size", type=_positive_int, default=32)
    fit.add_argument("--learning-rate", type=float, default=1e-3)
    fit.add_argument("--scaler", choices=("minmax", "standard"), default="minmax")
    fit.add_argument("--fillna", choices=("ffill", "interpolate"), default=None)
    fit.add_argument("--validation-split", type=float, default=0.0)
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("--threads", type=_positive_int, default=None)
    fit.add_argument("-v", "--verbose", action="store_true", help="per-epoch lines")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL")

    pred = sub.add_parser("predict", help="forecast the next steps with a saved model")
    pred.add_argument("model", metavar="MODEL")
    pred.add_argument("csv", metavar="CSV", nargs="?", default=None,
                      help="recent data to forecast from (default: the end of the fit data)")
    pred.add_argument("--steps", type=_positive_int, default=None,
                      help="steps to forecast (default: the model's horizon)")
    pred.add_argument("--date-column", default=None, metavar="COL")
    pred.add_argument("--threads", type=_positive_int, default=None)
    pred.add_argument("-o", "--output", default=None, metavar="OUT.csv",
                      help="write the forecast here (default: print it as CSV)")

    sub.add_parser("info", help="version, SIMD path, compiler, threads")
    sub.add_parser("bench", help="benchmarks against PyTorch / Keras / ONNX Runtime "
                   "(fastgru bench --help)", add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``fastgru`` command with ``argv`` (default ``sys.argv[1:]``); return the status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "bench":
            return _cmd_bench(argv[1:])
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
            return int(exc.code or 0) if not isinstance(exc.code, str) else 2
        if args.command is None:
            parser.print_help()
            return 2
        handler = {"demo": _cmd_demo, "fit": _cmd_fit, "predict": _cmd_predict,
                   "info": _cmd_info}[args.command]
        return handler(args)
    except BrokenPipeError:  # e.g. `fastgru info | head -1`: stop quietly (Python docs recipe)
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except UserError as exc:
        print(f"fastgru: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"fastgru: error: {msg}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # e.g. --units 100000: the weights alone need hundreds of GiB
        detail = f" ({exc})" if str(exc) else ""
        print(f"fastgru: error: not enough memory{detail}; try smaller --units, --window or "
              "--batch-size", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastgru: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
