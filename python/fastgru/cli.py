"""The ``fastgru`` command.

    fastgru demo [--epochs 10] [--plot FILE.png] [--threads N] [--days N] [--test-days 365]
    fastgru fit CSV --target COL [--date-column COL] [--window 100] [--horizon 1] [--units 50]
                    [--epochs 10] [--batch-size 32] [--log] [--difference LAG ...] -o MODEL
    fastgru predict MODEL [CSV] [--steps K] [--level 80 95] [--future CSV] [-o OUT.csv]
    fastgru info
    fastgru fit-many CSV --horizon N -o OUT.csv [--id-col unique_id] [--time-col ds]
                    [--target y] [--mode local|global] [--scheduler ADDRESS] [--jobs N]
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
_DEFAULT_SEED = 0  # two runs of `fastgru fit` on the same data give the same model


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

        try:
            set_num_threads(n)
        except ValueError as exc:
            raise UserError(f"--threads: {exc}") from None


def _threads() -> int:
    from ._config import get_num_threads

    return get_num_threads()


def read_series_csv(path: str, date_column: Optional[str] = None, columns=None):
    """Read a CSV for forecasting: the date column becomes a sorted-check DatetimeIndex.

    ``date_column`` None looks for a column named date/datetime/timestamp/time/ds (any case),
    then for the first text column whose every value parses as a date; without one the rows
    are numbered. ``columns`` keeps only those (plus the date). Gaps in the dates (spacings
    over 1.5 times the usual one, without a regular frequency) are reported on stderr.
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
        date_column = found[0] if found else _first_date_column(df)
    elif date_column not in df.columns:
        raise UserError(f"date column {date_column!r} not in {path}; columns are {list(df.columns)}")
    if date_column is not None:
        try:
            dates = pd.to_datetime(df[date_column])
        except (ValueError, TypeError) as exc:
            raise UserError(f"cannot parse column {date_column!r} of {path} as dates: {exc}") from None
        missing = [i for i, blank in enumerate(dates.isna()) if blank]
        if missing:  # data rows from 1, after the header (blank lines are not rows)
            rows = ", ".join(str(i + 1) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise UserError(f"column {date_column!r} of {path} has {len(missing)} missing "
                            f"date(s) (data row {rows}); fill them in or drop those rows")
        df = df.drop(columns=[date_column])
        df.index = pd.DatetimeIndex(dates, name=date_column)
        _warn_gaps(df.index, path)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise UserError(f"columns {missing} not in {path}; columns are {list(df.columns)}")
        df = df[list(columns)]
    return df


def _first_date_column(df):
    """The first text column whose every value parses as a date, or None."""
    import warnings

    import pandas as pd

    for column in df.columns:
        values = df[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue  # numbers would "parse" as nanoseconds since 1970
        with warnings.catch_warnings():  # "could not infer format": fine, we only probe
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(values, errors="coerce")
            except (ValueError, TypeError):
                continue
        if len(values) and not parsed.isna().any():
            return column
    return None


def _warn_gaps(index, path) -> None:
    from .timeindex import gaps

    count, pairs = gaps(index)
    if count:
        day = (lambda t: f"{t:%Y-%m-%d}" if t == t.normalize() else str(t))
        shown = ", ".join(f"{day(a)} -> {day(b)}" for a, b in pairs)
        print(f"fastgru: warning: {path} has {count} gap(s) in its dates ({shown}"
              f"{', ...' if count > len(pairs) else ''}); forecasts continue at the usual "
              "spacing, and windows across a gap mix far-apart rows. If they are missing data, "
              "add the dates as empty rows and fit with --fillna",
              file=sys.stderr)


def _cli_spelling(message: str) -> str:
    """Error hints written for Python callers, in the command's spelling."""
    for python, cli in (("fillna='ffill'", "--fillna ffill"),
                        ("fillna='interpolate'", "--fillna interpolate"),
                        ("use log=False", "fit without --log"),
                        ("calibration_size=None", "--calibration-size none"),
                        ("calibration_size= ", "--calibration-size "),
                        ("calibration_size", "--calibration-size")):
        message = message.replace(python, cli)
    return message


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
    nxt = result.forecaster.predict(steps=1, data=series)
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
        from ._validation import is_real_number_dtype

        numeric = [c for c in df.columns if is_real_number_dtype(df[c].dtype)]
        dropped = [c for c in df.columns if c not in numeric]
        if dropped and args.verbose:
            print(f"ignoring non-numeric columns {dropped}", file=sys.stderr)
        df = df[numeric]
    _set_threads(args.threads)
    target = targets[0] if len(targets) == 1 else targets
    future_covariates = _split(args.future_covariates)
    if future_covariates:
        missing = [c for c in future_covariates if c not in df.columns]
        if missing:
            raise UserError(f"--future-covariates {missing} not in {args.csv}; columns are "
                            f"{list(df.columns)}")
    difference = None
    if args.difference:
        difference = args.difference[0] if len(args.difference) == 1 else tuple(args.difference)
    forecaster = GRUForecaster(
        window=args.window, horizon=args.horizon, units=args.units, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, scaler=args.scaler,
        target=target, strategy=args.strategy, validation_split=args.validation_split,
        seed=args.seed, fillna=args.fillna, verbose=2 if args.verbose else 0,
        log=args.log, difference=difference, future_covariates=future_covariates,
        calendar=_split(args.calendar), calibration_size=_calibration(args.calibration_size),
    )
    t0 = time.perf_counter()
    try:
        forecaster.fit(df)
    except ValueError as exc:
        raise UserError(_cli_spelling(str(exc))) from None
    seconds = time.perf_counter() - t0
    forecaster.save(args.output)
    loss = forecaster.history_.history.get("loss", [])
    last = f", final loss {loss[-1]:.4g}" if loss else ""
    print(f"fitted on {len(df)} rows x {df.shape[1]} column(s) -> {targets} in {seconds:.2f} s"
          f"{last}, seed {args.seed}; saved to {args.output}")
    return 0


def _cmd_predict(args) -> int:
    from .forecaster import GRUForecaster

    _check_model_file(args.model)
    try:
        forecaster = GRUForecaster.load(args.model)
    except FileNotFoundError:
        raise UserError(f"no such model file: {args.model}") from None
    data = future = None
    if args.csv is not None:
        names = forecaster.feature_names_in_
        columns = names if names and all(isinstance(c, str) for c in names) else None
        data = read_series_csv(args.csv, args.date_column, columns)
    if args.future is not None:
        future = read_series_csv(args.future, args.date_column)
    elif forecaster.future_covariates:
        raise UserError(f"this model uses the future covariates {forecaster.future_covariates}: "
                        "give their values for the forecast steps with --future CSV")
    _set_threads(args.threads)
    try:
        forecast = forecaster.predict(steps=args.steps, data=data, level=args.level or None,
                                      future=future)
    except ValueError as exc:
        raise UserError(_cli_spelling(str(exc))) from None
    float_format = f"%.{args.precision}g"
    if args.output:
        forecast.to_csv(args.output, float_format=float_format)
        print(f"wrote {len(forecast)} forecast row(s) to {args.output}")
    else:
        sys.stdout.write(forecast.to_csv(float_format=float_format))
    return 0


def _check_model_file(path: str) -> None:
    """A model is an .npz (zip) archive: say so plainly when given a CSV or other file."""
    import os
    import zipfile

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        hint = ""
        if path.lower().endswith((".csv", ".txt")):
            hint = (f"; to forecast from this data, give the model first: "
                    f"fastgru predict MODEL {path}")
        raise UserError(f"{path} is not a fastgru model (a model is the file `fastgru fit ... "
                        f"-o MODEL` writes){hint}")


def _calibration(text: Optional[str]):
    if text is None or text == "auto":
        return "auto"
    if text.lower() == "none":
        return None
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise UserError(f"--calibration-size must be auto, none, a row count or a fraction; "
                        f"got {text!r}") from None


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


def _cmd_fit_many(args) -> int:
    import pandas as pd

    from .many import forecast_many

    try:
        df = pd.read_csv(args.csv)
    except FileNotFoundError:
        raise UserError(f"no such file: {args.csv}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {args.csv} as CSV: {exc}") from None
    client = None
    if args.scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise UserError("--scheduler needs dask.distributed: "
                            "pip install 'fastgru[dask]'") from None
        try:
            client = Client(args.scheduler, timeout=args.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {args.scheduler}: "
                            f"{exc}") from None
    params = dict(window=args.window, units=args.units, epochs=args.epochs,
                  batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed)
    if args.fillna is not None:
        params["fillna"] = args.fillna
    t0 = time.perf_counter()
    try:
        forecasts, errors = forecast_many(
            df, args.horizon, id_col=args.id_col, time_col=args.time_col, target_col=args.target,
            mode=args.mode, client=client, n_jobs=args.jobs, progress=not args.quiet,
            return_errors=True, **params)
    finally:
        if client is not None:
            client.close()
    seconds = time.perf_counter() - t0
    n_series = forecasts[args.id_col].nunique() + len(errors)
    if len(errors):
        first = errors.iloc[0]
        print(f"{len(errors)} of {n_series} series could not be fitted (first: "
              f"{first[args.id_col]}: {first['reason']})", file=sys.stderr)
        if args.errors:
            errors.to_csv(args.errors, index=False)
            print(f"wrote the ids and reasons to {args.errors}", file=sys.stderr)
    if len(errors) == n_series:
        raise UserError("no series could be fitted; nothing written")
    forecasts.to_csv(args.output, index=False)
    print(f"forecast {n_series - len(errors)} series x {args.horizon} steps ({args.mode} mode) "
          f"in {seconds:.2f} s; wrote {len(forecasts)} rows to {args.output}")
    return 0


def _cmd_bench(argv: List[str]) -> int:
    try:
        from .bench import main as bench_main
    except ImportError as exc:
        raise UserError(f"fastgru bench is not available: {exc}") from None
    return int(bench_main(argv) or 0)


# ------------------------------------------------------------------------------------- parser


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in --help, except None and flags (the help says what they do)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or not action.option_strings:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgru", description="Fast GRU time-series forecasting (C++ SIMD + OpenMP kernels).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    defaults = _DefaultsHelpFormatter

    demo = sub.add_parser("demo", help="train and test a GRU on the bundled daily temperatures",
                          formatter_class=defaults,
                          description="The Keras recipe end to end on the bundled (synthetic) "
                          "daily temperatures: MinMax scaling, windows of 100 days, GRU(50) + "
                          "Dense(1), Adam + MSE; tested one step ahead on the held-out tail "
                          "against the persistence forecast.")
    demo.add_argument("--epochs", type=_positive_int, default=10, help="training epochs")
    demo.add_argument("--batch-size", type=_positive_int, default=32, help="windows per step")
    demo.add_argument("--window", type=_positive_int, default=100, help="days the GRU sees")
    demo.add_argument("--units", type=_positive_int, default=50, help="GRU units")
    demo.add_argument("--days", type=_positive_int, default=None,
                      help="use only the first N days (default: all 8,000)")
    demo.add_argument("--test-days", type=_positive_int, default=None,
                      help="held-out tail (default: 365, or 10%% of a shorter series)")
    demo.add_argument("--seed", type=int, default=_DEFAULT_SEED, help="random seed")
    demo.add_argument("--threads", type=_positive_int, default=None,
                      help="OpenMP threads (default: the OpenMP default)")
    demo.add_argument("--plot", metavar="FILE.png", default=None,
                      help="save forecast vs actual (needs matplotlib)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")

    fit = sub.add_parser("fit", help="fit a forecaster on a CSV and save it",
                         formatter_class=defaults)
    fit.add_argument("csv", metavar="CSV")
    fit.add_argument("--target", action="append", required=True, metavar="COL",
                     help="column to forecast (repeat or comma-separate for several)")
    fit.add_argument("--features", action="append", metavar="COL", default=None,
                     help="input columns (default: every numeric column)")
    fit.add_argument("--date-column", "--date-col", dest="date_column", default=None,
                     metavar="COL", help="the dates (default: a column named date/datetime/"
                     "timestamp/time/ds, else the first column that parses as dates)")
    fit.add_argument("--window", type=_positive_int, default=100, help="steps the GRU sees")
    fit.add_argument("--horizon", type=_positive_int, default=1,
                     help="default forecast steps (direct: steps output at once)")
    fit.add_argument("--strategy", choices=("recursive", "direct"), default="recursive",
                     help="multi-step forecasts: feed back one step at a time, or all at once")
    fit.add_argument("--units", type=_positive_int, default=50, help="GRU units")
    fit.add_argument("--epochs", type=_positive_int, default=10, help="training epochs")
    fit.add_argument("--batch-size", type=_positive_int, default=32, help="windows per step")
    fit.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    fit.add_argument("--scaler", choices=("minmax", "standard"), default="minmax",
                     help="input scaling")
    fit.add_argument("--fillna", choices=("ffill", "interpolate"), default=None,
                     help="fill missing values (default: they are an error)")
    fit.add_argument("--log", action="store_true",
                     help="model the log of the target (positive series with growing trend "
                     "or season)")
    fit.add_argument("--difference", type=_positive_int, nargs="+", default=None, metavar="LAG",
                     help="model differences at these lags: 1 for a trend, 12 for a monthly "
                     "season, 1 12 for both")
    fit.add_argument("--future-covariates", action="append", metavar="COL", default=None,
                     help="columns known in advance (predict needs them in --future)")
    fit.add_argument("--calendar", action="append", metavar="NAME", default=None,
                     help="calendar inputs from the dates: hour, day_of_week, month, day_of_year")
    fit.add_argument("--calibration-size", default="auto", metavar="N",
                     help="final rows that calibrate prediction intervals (auto, none, a count "
                     "or a fraction)")
    fit.add_argument("--validation-split", type=float, default=0.0,
                     help="fraction of windows held out for val_loss")
    fit.add_argument("--seed", type=int, default=_DEFAULT_SEED, help="random seed")
    fit.add_argument("--threads", type=_positive_int, default=None,
                     help="OpenMP threads (default: the OpenMP default)")
    fit.add_argument("-v", "--verbose", action="store_true", help="per-epoch lines")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL",
                     help="where to save the model")

    pred = sub.add_parser("predict", help="forecast the next steps with a saved model",
                          formatter_class=defaults)
    pred.add_argument("model", metavar="MODEL", help="a model saved by `fastgru fit`")
    pred.add_argument("csv", metavar="CSV", nargs="?", default=None,
                      help="recent data to forecast from (default: the end of the fit data)")
    pred.add_argument("--steps", type=_positive_int, default=None,
                      help="steps to forecast (default: the model's horizon)")
    pred.add_argument("--level", type=float, nargs="+", default=None, metavar="PCT",
                      help="prediction interval levels in percent, e.g. 80 95")
    pred.add_argument("--future", metavar="CSV", default=None,
                      help="values of the model's future covariates for the forecast steps")
    pred.add_argument("--date-column", "--date-col", dest="date_column", default=None,
                      metavar="COL", help="the dates (default: found as in fit)")
    pred.add_argument("--precision", type=_positive_int, default=6,
                      help="significant digits in the output")
    pred.add_argument("--threads", type=_positive_int, default=None,
                      help="OpenMP threads (default: the OpenMP default)")
    pred.add_argument("-o", "--output", default=None, metavar="OUT.csv",
                      help="write the forecast here (default: print it as CSV)")

    sub.add_parser("info", help="version, SIMD path, compiler, threads")
    sub.add_parser("bench", help="benchmarks against PyTorch / Keras / ONNX Runtime "
                   "(fastgru bench --help)", add_help=False)

    many = sub.add_parser("fit-many", help="forecast every series of a long-format CSV",
                          description="One GRU per series (or one for all: --mode global) on a "
                          "long-format CSV (one row per series id, time, value); writes the "
                          "forecasts as id, time, y_hat. Runs on every core, or on a Dask "
                          "cluster with --scheduler.")
    many.add_argument("csv", metavar="CSV")
    many.add_argument("--id-col", default="unique_id", metavar="COL")
    many.add_argument("--time-col", default="ds", metavar="COL")
    many.add_argument("--target", default="y", metavar="COL")
    many.add_argument("--horizon", type=_positive_int, required=True, metavar="N")
    many.add_argument("--mode", choices=("local", "global"), default="local")
    many.add_argument("--window", type=_positive_int, default=100)
    many.add_argument("--units", type=_positive_int, default=50)
    many.add_argument("--epochs", type=_positive_int, default=10)
    many.add_argument("--batch-size", type=_positive_int, default=32)
    many.add_argument("--learning-rate", type=float, default=1e-3)
    many.add_argument("--fillna", choices=("ffill", "interpolate"), default=None)
    many.add_argument("--seed", type=int, default=None)
    many.add_argument("--jobs", type=_positive_int, default=None,
                      help="local processes (default: every core; 1: this process)")
    many.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="a Dask scheduler, e.g. tcp://10.0.0.5:8786 (needs fastgru[dask])")
    many.add_argument("--connect-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    many.add_argument("--errors", default=None, metavar="ERRORS.csv",
                      help="write the series that could not be fitted, with the reason")
    many.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    many.add_argument("-o", "--output", required=True, metavar="OUT.csv")
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
                   "fit-many": _cmd_fit_many, "info": _cmd_info}[args.command]
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
