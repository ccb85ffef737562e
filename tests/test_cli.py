"""The ``fastgru`` command through ``main([...])``: demo, fit -> predict, info, bench, errors."""
import re
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from fastgru import cli


def _write_csv(path, n=200, extra=False):
    t = np.arange(n)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "Date": pd.date_range("2022-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "Temp": 10 + 5 * np.sin(2 * np.pi * t / 30) + rng.normal(0, 0.3, n),
    })
    if extra:
        df["Humidity"] = 60 + rng.normal(0, 1, n)
        df["Station"] = "A"
    df.to_csv(path, index=False)
    return df


SMALL = ["--window", "10", "--units", "8", "--epochs", "2", "--seed", "0"]


def test_demo_small_prints_the_recipe_report(capsys):
    rc = cli.main(["demo", "--days", "400", "--test-days", "40", "--epochs", "1", "--window",
                   "20", "--units", "8"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Epoch 1/1" in out  # Keras-style progress lines
    assert re.search(r"test RMSE: GRU \d+\.\d+.C vs persistence \d+\.\d+.C", out)
    assert re.search(r"next-day forecast for 2011-02-05: -?\d+\.\d+.C", out)
    assert re.search(r"time: \d+\.\d+ s", out)


def test_demo_quiet_and_plot_or_clear_message(tmp_path, capsys):
    png = tmp_path / "demo.png"
    rc = cli.main(["demo", "--days", "300", "--test-days", "30", "--epochs", "1", "--window",
                   "10", "--units", "4", "--quiet", "--plot", str(png)])
    out, err = capsys.readouterr()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert rc == 2 and "needs matplotlib" in err and "Traceback" not in err
        assert not png.exists()
    else:
        assert rc == 0 and png.stat().st_size > 1000 and "plot saved" in out
    if rc == 0:
        assert "Epoch" not in out


@pytest.mark.slow
def test_demo_full_recipe_beats_persistence(capsys):
    """``fastgru demo`` as shipped: 8,000 days, window 100, GRU(50), 10 epochs."""
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"test RMSE: GRU (\d+\.\d+).C vs persistence (\d+\.\d+).C", out)
    assert m, out
    assert float(m.group(1)) < 0.97 * float(m.group(2))  # seed 0 gives about 0.91
    assert "Epoch 10/10" in out and "next-day forecast for 2031-11-27" in out


def test_fit_then_predict_round_trip(tmp_path, capsys):
    csv = tmp_path / "temps.csv"
    df = _write_csv(csv)
    model = tmp_path / "temps.fgru"
    rc = cli.main(["fit", str(csv), "--target", "Temp", *SMALL, "-o", str(model)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert model.exists() and "saved to" in out

    rc = cli.main(["predict", str(model), str(csv), "--steps", "3"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "Date,Temp"
    assert [line.split(",")[0] for line in lines[1:]] == ["2022-07-20", "2022-07-21", "2022-07-22"]
    assert all(np.isfinite(float(line.split(",")[1])) for line in lines[1:])

    # without a CSV the forecast starts after the data seen in fit; -o writes a file
    forecast = tmp_path / "forecast.csv"
    rc = cli.main(["predict", str(model), "--steps", "2", "-o", str(forecast)])
    assert rc == 0
    written = pd.read_csv(forecast, parse_dates=["Date"], index_col="Date")
    assert list(written.index) == list(pd.date_range("2022-07-20", periods=2, freq="D"))
    assert "wrote 2 forecast row(s)" in capsys.readouterr().out

    # the forecast from a shorter CSV starts after its last date
    short = tmp_path / "short.csv"
    df.iloc[:150].to_csv(short, index=False)
    assert cli.main(["predict", str(model), str(short), "--steps", "1"]) == 0
    assert "2022-05-31" in capsys.readouterr().out


def test_fit_multivariate_direct_and_ignored_text_columns(tmp_path, capsys):
    csv = tmp_path / "weather.csv"
    _write_csv(csv, extra=True)
    model = tmp_path / "w.fgru"
    rc = cli.main(["fit", str(csv), "--target", "Temp", "--horizon", "3", "--strategy",
                   "direct", *SMALL, "-o", str(model)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    rc = cli.main(["predict", str(model), str(csv)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert len(out.strip().splitlines()) == 4  # header + horizon rows
    rc = cli.main(["predict", str(model), str(csv), "--steps", "5"])
    assert rc == 2 and "cannot forecast 5 steps" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["fit", "{missing}", "--target", "Temp", "-o", "m"], "no such file"),
    (["fit", "{csv}", "--target", "Rain", "-o", "m"], "target column(s) ['Rain'] not in"),
    (["fit", "{csv}", "--target", "Temp", "--date-column", "When", "-o", "m"],
     "date column 'When' not in"),
    (["fit", "{csv}", "--target", "Temp", "--window", "500", "-o", "m"], "too short"),
    (["predict", "{missing}"], "no such model file"),
    (["predict", "{csv}"], "is not a fastgru model"),
])
def test_user_errors_exit_2_without_traceback(tmp_path, capsys, argv, message):
    csv = tmp_path / "t.csv"
    _write_csv(csv)
    argv = [a.format(csv=csv, missing=tmp_path / "nope.csv") for a in argv]
    argv = [str(tmp_path / a) if a == "m" else a for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("fastgru: error:")


def test_usage_errors_exit_2(capsys):
    assert cli.main([]) == 2
    assert cli.main(["fit"]) == 2  # argparse: CSV and --target are required
    assert "required" in capsys.readouterr().err
    assert cli.main(["demo", "--epochs", "zero"]) == 2
    assert cli.main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out


def test_info_prints_version_config_and_threads(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fastgru ")
    assert "simd" in out and re.search(r"threads: \d+", out)


def test_bench_forwards_its_arguments(monkeypatch):
    import types

    seen = {}
    fake = types.ModuleType("fastgru.bench")

    def fake_main(argv):
        seen["argv"] = argv
        return 0

    fake.main = fake_main
    monkeypatch.setitem(sys.modules, "fastgru.bench", fake)
    assert cli.main(["bench", "--quick", "-x", "1"]) == 0
    assert seen["argv"] == ["--quick", "-x", "1"]


def test_threads_option_sets_the_kernel_threads(capsys):
    import fastgru

    previous = fastgru.get_num_threads()
    try:
        assert cli.main(["demo", "--days", "200", "--test-days", "20", "--epochs", "1",
                         "--window", "10", "--units", "4", "--quiet", "--threads", "1"]) == 0
        assert "threads: 1" in capsys.readouterr().out
    finally:
        fastgru.set_num_threads(previous)


# ----------------------------------------------------------------------------- issue 13's fixes

FAST = ["--window", "10", "--units", "4", "--epochs", "1"]


def test_help_shows_the_defaults(capsys):
    assert cli.main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: 100)" in out and "(default: minmax)" in out and "(default: 0)" in out
    assert "(default: None)" not in out


def test_nan_hint_uses_the_command_spelling(tmp_path, capsys):
    csv = tmp_path / "gap.csv"
    df = _write_csv(csv)
    df.loc[5, "Temp"] = np.nan
    df.to_csv(csv, index=False)
    assert cli.main(["fit", str(csv), "--target", "Temp", *FAST, "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "--fillna ffill" in err and "fillna='ffill'" not in err


@pytest.mark.parametrize("blank_row", [0, 3])
def test_a_blank_date_is_a_user_error_naming_its_line(tmp_path, capsys, blank_row):
    csv = tmp_path / "blank.csv"
    df = _write_csv(csv)
    df.loc[blank_row, "Date"] = None
    df.to_csv(csv, index=False)
    assert cli.main(["fit", str(csv), "--target", "Temp", "--date-column", "Date", *FAST,
                     "-o", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgru: error:") and "Traceback" not in err
    assert f"1 missing date(s) (data row {blank_row + 1})" in err


def test_any_date_column_is_found_and_gaps_are_reported(tmp_path, capsys):
    csv = tmp_path / "when.csv"
    df = _write_csv(csv).rename(columns={"Date": "When"}).drop(index=[50, 51, 120])
    df.to_csv(csv, index=False)
    frame = cli.read_series_csv(str(csv))
    assert frame.index.name == "When" and list(frame.columns) == ["Temp"]
    err = capsys.readouterr().err
    assert "2 gap(s)" in err and "2022-02-19 -> 2022-02-22" in err
    model = tmp_path / "m.npz"
    assert cli.main(["fit", str(csv), "--target", "Temp", "--date-col", "When", *FAST,
                     "-o", str(model)]) == 0
    # a numeric column is never taken for dates
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]}).to_csv(plain, index=False)
    assert isinstance(cli.read_series_csv(str(plain)).index, pd.RangeIndex)


def test_default_seed_is_fixed_and_printed_and_output_is_rounded(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    _write_csv(csv)
    outputs = []
    for name in ("a.npz", "b.npz"):
        assert cli.main(["fit", str(csv), "--target", "Temp", *FAST, "-o",
                         str(tmp_path / name)]) == 0
        assert "seed 0" in capsys.readouterr().out
        assert cli.main(["predict", str(tmp_path / name), "--steps", "3"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    values = [line.split(",")[1] for line in outputs[0].strip().splitlines()[1:]]
    assert all(len(v.replace(".", "").replace("-", "").lstrip("0")) <= 6 for v in values)


def test_fit_with_transforms_and_predict_with_intervals(tmp_path, capsys):
    csv = tmp_path / "air.csv"
    from fastgru.datasets import load_airline_passengers

    load_airline_passengers().to_csv(csv)
    model = tmp_path / "air.npz"
    assert cli.main(["fit", str(csv), "--target", "Passengers", "--log", "--difference", "12",
                     "--window", "12", "--units", "4", "--epochs", "2", "-o", str(model)]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(model), "--steps", "3", "--level", "80", "95"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Month,forecast,lo_80,hi_80,lo_95,hi_95"
    assert out.splitlines()[1].startswith("1961-01-01,")


def test_future_covariates_from_the_command_line(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    df = _write_csv(csv)
    df["workday"] = (np.arange(len(df)) % 7 < 5).astype(float)
    df.to_csv(csv, index=False)
    model = tmp_path / "d.npz"
    assert cli.main(["fit", str(csv), "--target", "Temp", "--future-covariates", "workday",
                     "--calendar", "day_of_week", *FAST, "-o", str(model)]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(model), "--steps", "2"]) == 2
    assert "--future CSV" in capsys.readouterr().err
    future = tmp_path / "future.csv"
    pd.DataFrame({"Date": ["2022-07-20", "2022-07-21"], "workday": [1.0, 0.0]}).to_csv(
        future, index=False)
    assert cli.main(["predict", str(model), "--steps", "2", "--future", str(future)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("2022-07-20,")
