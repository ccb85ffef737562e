"""The bundled synthetic temperature series: shape, provenance, and that it is forecastable."""
import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from fastgru.datasets import daily_temperatures_path, load_daily_temperatures, make_daily_temperatures


def test_bundled_csv_has_the_recipe_shape():
    df = load_daily_temperatures()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["Temp"]
    assert len(df) == 8000
    assert df.index.name == "Date" and isinstance(df.index, pd.DatetimeIndex)
    assert df.index[0] == pd.Timestamp("2010-01-01")
    assert df.index.freq == "D" and df.index.is_monotonic_increasing and df.index.is_unique
    assert df["Temp"].dtype == np.float64 and not df["Temp"].isna().any()
    assert -15 < df["Temp"].min() < 0 < 25 < df["Temp"].max() < 40  # a temperate climate


def test_bundled_csv_is_small_and_documented():
    path = daily_temperatures_path()
    assert path.stat().st_size < 300_000
    notice = (path.parent / "README.md").read_text(encoding="utf-8")
    assert "synthetic" in notice and "make_daily_temperatures" in notice and "Licence" in notice


def test_bundled_csv_is_what_the_documented_generator_makes():
    np.testing.assert_allclose(
        load_daily_temperatures()["Temp"].to_numpy(),
        make_daily_temperatures()["Temp"].to_numpy(),
        atol=0.006,
    )


def test_generator_is_seeded_and_sized():
    a = make_daily_temperatures(n_days=50, seed=1)
    b = make_daily_temperatures(n_days=50, seed=1)
    c = make_daily_temperatures(n_days=50, seed=2)
    assert len(a) == 50 and a.equals(b) and not a.equals(c)
    with pytest.raises(ValueError, match="n_days"):
        make_daily_temperatures(n_days=0)


def test_seasonal_cycle_is_northern_temperate():
    s = load_daily_temperatures()["Temp"]
    monthly = s.groupby(s.index.month).mean()
    assert monthly.idxmin() in (1, 2) and monthly.idxmax() in (7, 8)
    assert 15 < monthly.max() - monthly.min() < 22


def test_persistence_is_beatable_by_a_linear_model_on_the_window():
    """The structure a GRU should learn is there: a least-squares AR(100) fitted on all but the
    last 365 days beats "tomorrow = today" on them by a clear margin."""
    y = load_daily_temperatures()["Temp"].to_numpy()
    window, test = 100, 365
    X = np.lib.stride_tricks.sliding_window_view(y[:-1], window)
    target = y[window:]
    A = np.c_[X, np.ones(len(X))]
    coef = np.linalg.lstsq(A[:-test], target[:-test], rcond=None)[0]
    rmse_linear = np.sqrt(np.mean((A[-test:] @ coef - target[-test:]) ** 2))
    rmse_persistence = np.sqrt(np.mean((y[-test:] - y[-test - 1:-1]) ** 2))
    assert 2.0 < rmse_persistence < 3.0
    assert rmse_linear < 0.93 * rmse_persistence
