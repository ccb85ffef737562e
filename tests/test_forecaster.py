"""GRUForecaster: dates continue, multi-step strategies, checks on bad input, backtest, save/load.

The seed recipe on the bundled data (window 100, GRU(50), 10 epochs) beating persistence is
tested end to end through ``fastgru demo`` in test_cli.py."""
import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from fastgru import timeindex
from fastgru.forecaster import BacktestResult, GRUForecaster, load_forecaster
from fastgru.preprocessing import NotFittedError

SMALL = dict(window=12, units=8, epochs=2, batch_size=16, seed=0)


def _series(n=240, start="2021-01-01", freq="D", name="Temp", seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 10 + 5 * np.sin(2 * np.pi * t / 30) + rng.normal(0, 0.3, n)
    return pd.Series(values, index=pd.date_range(start, periods=n, freq=freq, name="Date"),
                     name=name)


def _frame(n=240, seed=0):
    s = _series(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return pd.DataFrame({"Temp": s, "Humidity": 60 + 10 * np.cos(np.arange(n) / 5)
                         + rng.normal(0, 1, n)}, index=s.index)


# ----------------------------------------------------------------------------- dates and shapes


def test_fit_returns_self_and_predict_continues_daily_dates():
    s = _series()
    f = GRUForecaster(**SMALL)
    assert f.fit(s) is f
    out = f.predict(steps=7)
    assert isinstance(out, pd.Series) and out.name == "Temp" and len(out) == 7
    expected = pd.date_range("2021-08-29", periods=7, freq="D", name="Date")
    assert s.index[-1] == pd.Timestamp("2021-08-28")
    assert out.index.equals(expected)
    assert np.isfinite(out).all() and 0 < out.mean() < 25  # back in the original units
    assert len(f.history_.history["loss"]) == 2


def test_frequency_is_inferred_when_the_index_has_none():
    s = _series()
    s.index = pd.DatetimeIndex(list(s.index), name="Date")  # drops .freq
    assert s.index.freq is None
    out = GRUForecaster(**SMALL).fit(s).predict(steps=3)
    assert list(out.index) == list(pd.date_range("2021-08-29", periods=3, freq="D"))


def test_month_start_and_business_day_frequencies_are_kept():
    s = _series(n=60, freq="MS")
    out = GRUForecaster(**SMALL).fit(s).predict(steps=3)
    assert list(out.index) == list(pd.date_range(s.index[-1], periods=4, freq="MS")[1:])
    b = _series(n=60, start="2024-01-01", freq="B")  # ends on a Friday?
    out = GRUForecaster(**SMALL).fit(b).predict(steps=3)
    assert all(d.weekday() < 5 for d in out.index) and out.index[0] > b.index[-1]


@pytest.mark.parametrize("freq, start", [("MS", "2000-01-01"), ("ME", "2000-01-31"),
                                         ("QS-FEB", "2000-02-01"), ("QE-MAR", "2000-03-31"),
                                         ("2MS", "2000-01-01"), ("YS", "1950-01-01"),
                                         ("B", "2023-12-25")])
def test_calendar_dates_with_a_gap_continue_on_the_calendar(freq, start):
    # a missing month or a holiday leaves pandas no frequency; a median time span would
    # drift (31 days from a month start) or land on weekends
    s = _series(n=66, start=start, freq=freq)
    s = s.drop(index=s.index[30])
    assert pd.infer_freq(s.index) is None
    f = GRUForecaster(**SMALL).fit(s)
    want = pd.date_range(s.index[-1], periods=4, freq=freq, name="Date")[1:]
    assert list(f.predict(steps=3).index) == list(want)
    assert timeindex.gaps(s.index) == (1, [(s.index[29], s.index[30])])
    if freq == "B":
        assert all(d.weekday() < 5 for d in f.predict(steps=7).index)


@pytest.mark.parametrize("freq", ["B", "ME"])
def test_calendar_steps_of_tz_aware_dates_follow_the_local_calendar(freq):
    # Sydney's midnight is the previous day in UTC: weekdays and month ends are local ones
    s = _series(n=66, start="2023-12-25" if freq == "B" else "2000-01-31", freq=freq)
    s.index = s.index.tz_localize("Australia/Sydney")
    s = s.drop(index=s.index[30])
    want = pd.date_range(s.index[-1], periods=4, freq=freq, name="Date")[1:]
    assert list(GRUForecaster(**SMALL).fit(s).predict(steps=3).index) == list(want)
    assert timeindex.gaps(s.index)[0] == 1


def test_irregular_dates_continue_at_the_median_spacing():
    s = _series(n=100, freq="6h")
    keep = np.ones(100, bool)
    keep[[10, 11, 40, 77]] = False  # gaps: no frequency can be inferred
    s = s[keep]
    f = GRUForecaster(**SMALL).fit(s)
    out = f.predict(steps=2)
    assert list(out.index) == [s.index[-1] + pd.Timedelta(hours=6 * k) for k in (1, 2)]


def test_numpy_in_numpy_out_and_integer_index():
    values = _series().to_numpy()
    out = GRUForecaster(**SMALL).fit(values).predict(steps=4)
    assert isinstance(out, np.ndarray) and out.shape == (4,)
    s = pd.Series(values, index=pd.RangeIndex(100, 100 + 2 * len(values), 2))
    out = GRUForecaster(**SMALL).fit(s).predict(steps=3)
    assert list(out.index) == [100 + 2 * len(values) + k * 2 for k in range(3)]


def test_recursive_forecast_feeds_predictions_back():
    f = GRUForecaster(**SMALL).fit(_series())
    one = f.predict(steps=1)
    three = f.predict(steps=3)
    assert three.iloc[0] == pytest.approx(one.iloc[0], rel=1e-6)
    assert f.predict().shape == (1,)  # default: horizon steps


def test_direct_strategy_outputs_horizon_steps_at_once():
    f = GRUForecaster(horizon=4, strategy="direct", **SMALL).fit(_series())
    assert f.model_.layers[-1].units == 4
    four = f.predict()
    assert len(four) == 4
    np.testing.assert_allclose(f.predict(steps=2).to_numpy(), four.to_numpy()[:2], rtol=1e-6)
    # beyond the horizon: blocks of 4 chained, since the only input is the target
    assert len(f.predict(steps=9)) == 9


def test_predict_from_new_data_starts_after_it():
    s = _series()
    f = GRUForecaster(**SMALL).fit(s.iloc[:200])
    out = f.predict(steps=2, data=s)
    assert out.index[0] == s.index[-1] + pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="too short"):
        f.predict(data=s.iloc[:5])


# ----------------------------------------------------------------------------- multivariate


def test_multivariate_inputs_with_one_target_recursive_only_one_step():
    df = _frame()
    f = GRUForecaster(target="Temp", **SMALL).fit(df)
    assert f.n_features_in_ == 2 and f.target_names_ == ["Temp"]
    out = f.predict(steps=1)
    assert isinstance(out, pd.Series) and out.name == "Temp"
    with pytest.raises(ValueError, match="strategy='direct'"):
        f.predict(steps=3)
    g = GRUForecaster(target="Temp", horizon=3, strategy="direct", **SMALL).fit(df)
    assert len(g.predict(steps=3)) == 3
    with pytest.raises(ValueError, match="cannot forecast 4 steps"):
        g.predict(steps=4)


def test_multivariate_all_targets_returns_frame_and_can_recurse():
    df = _frame()
    f = GRUForecaster(**SMALL).fit(df)
    out = f.predict(steps=5)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["Temp", "Humidity"]
    assert out.shape == (5, 2)
    assert 40 < out["Humidity"].mean() < 80 and 0 < out["Temp"].mean() < 25
    # columns are matched by name, so a reordered frame gives the same forecast
    np.testing.assert_allclose(f.predict(data=df[["Humidity", "Temp"]]).to_numpy(),
                               f.predict(data=df).to_numpy())


def test_target_by_index_and_list():
    df = _frame()
    f = GRUForecaster(target=1, **SMALL).fit(df)
    assert f.target_names_ == ["Humidity"]
    g = GRUForecaster(target=["Humidity"], **SMALL).fit(df)
    assert isinstance(g.predict(), pd.DataFrame)


# ----------------------------------------------------------------------------- bad input


def test_predict_before_fit_is_a_clear_error():
    f = GRUForecaster()
    for call in (lambda: f.predict(), lambda: f.score(_series()), lambda: f.save("x.npz"),
                 lambda: f.backtest(_series(), 10, refit=False)):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()


def test_nan_is_an_error_naming_the_dates_unless_fillna():
    s = _series()
    s.iloc[[5, 50]] = np.nan
    with pytest.raises(ValueError, match=r"NaN at 2 position.*2021-01-06.*2021-02-20.*fillna"):
        GRUForecaster(**SMALL).fit(s)
    for how in ("ffill", "interpolate"):
        out = GRUForecaster(fillna=how, **SMALL).fit(s).predict(steps=2)
        assert np.isfinite(out).all()
    s.iloc[0] = np.nan  # a leading NaN is back-filled
    GRUForecaster(fillna="ffill", **SMALL).fit(s)


def test_nan_in_numpy_input_names_rows():
    v = _series().to_numpy().copy()
    v[7] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        GRUForecaster(**SMALL).fit(v)


def test_duplicate_and_unsorted_dates_are_rejected():
    s = _series()
    dup = pd.concat([s.iloc[:100], s.iloc[99:]])
    with pytest.raises(ValueError, match="duplicate dates.*2021-04-10"):
        GRUForecaster(**SMALL).fit(dup)
    shuffled = s.iloc[np.r_[0:50, 60:70, 50:60, 70:len(s)]]
    with pytest.raises(ValueError, match="not in increasing order.*sort_index"):
        GRUForecaster(**SMALL).fit(shuffled)


def test_too_short_names_the_lengths():
    with pytest.raises(ValueError, match=r"10 rows.*window=12.*at least 13"):
        GRUForecaster(**SMALL).fit(_series(n=10))


def test_missing_target_column_names_it():
    with pytest.raises(KeyError, match="'Rain' not found"):
        GRUForecaster(target="Rain", **SMALL).fit(_frame())


def test_wrong_feature_count_at_predict():
    f = GRUForecaster(**SMALL).fit(_series().to_numpy())
    with pytest.raises(ValueError, match="2 feature.*fitted with 1"):
        f.predict(data=np.ones((30, 2)))
    g = GRUForecaster(target="Temp", **SMALL).fit(_frame())
    with pytest.raises(ValueError, match="missing the columns \\['Humidity'\\]"):
        g.predict(data=_frame()[["Temp"]].assign(X=1.0))


def test_non_numeric_columns_and_string_index_are_rejected():
    df = _frame().reset_index()  # the Date column is now data
    with pytest.raises(ValueError, match="not real numbers: \\['Date'\\].*set_index"):
        GRUForecaster(**SMALL).fit(df.set_index(pd.RangeIndex(len(df))))
    s = _series()
    s.index = s.index.strftime("%Y-%m-%d")
    with pytest.raises(ValueError, match="DatetimeIndex"):
        GRUForecaster(**SMALL).fit(s)
    # complex numbers would be cast to their real part: refused, as in NumPy input
    with pytest.raises(ValueError, match="not real numbers: \\['X'\\]"):
        GRUForecaster(target="Temp", **SMALL).fit(_frame().assign(X=1 + 2j))
    f = GRUForecaster(**SMALL).fit(_series())
    with pytest.raises(ValueError, match="not real numbers"):
        f.predict(data=_series().astype(complex))


@pytest.mark.parametrize("kw, match", [
    ({"strategy": "both"}, "strategy"),
    ({"fillna": "zero"}, "fillna"),
    ({"window": 0}, "window"),
    ({"validation_split": 1.5}, "validation_split"),
    ({"scaler": "robust"}, "scaler"),
    ({"early_stopping": "yes"}, "early_stopping"),
])
def test_bad_parameters_are_reported_at_fit(kw, match):
    params = {**SMALL, **kw}
    with pytest.raises(ValueError, match=match):
        GRUForecaster(**params).fit(_series())


# ----------------------------------------------------------------------------- evaluate


def test_score_and_backtest_against_persistence():
    s = _series(n=300)
    f = GRUForecaster(**{**SMALL, "epochs": 5})
    result = f.backtest(s, test_size=30)
    assert isinstance(result, BacktestResult) and result.n_steps == 30
    f = result.forecaster  # fitted on the rows before the tail
    frame = result.predictions
    assert list(frame.columns) == ["actual", "forecast", "persistence"]
    assert frame.index.equals(s.index[-30:])
    np.testing.assert_allclose(frame["actual"], s.iloc[-30:])
    np.testing.assert_allclose(frame["persistence"], s.iloc[-31:-1])
    assert result.persistence_rmse == pytest.approx(
        np.sqrt(np.mean((s.iloc[-30:].to_numpy() - s.iloc[-31:-1].to_numpy()) ** 2)))
    assert f.score(s, test_size=30) == pytest.approx(result.rmse)
    assert f.score(s, metric="mae", test_size=30) == pytest.approx(result.mae)
    assert "persistence" in str(result)
    with pytest.raises(ValueError, match="metric"):
        f.score(s, metric="mape")
    with pytest.raises(ValueError, match="test_size=400"):
        f.score(s, test_size=400)
    fraction = f.backtest(s, test_size=0.1, refit=False)
    assert fraction.n_steps == 30


def test_backtest_several_targets_has_two_column_levels():
    f = GRUForecaster(**SMALL)
    result = f.backtest(_frame(), test_size=20)
    assert result.predictions.shape == (20, 6)
    assert ("forecast", "Humidity") in result.predictions.columns


def test_learns_a_sine_wave():
    t = np.arange(600)
    s = pd.Series(np.sin(2 * np.pi * t / 25), index=pd.date_range("2020", periods=600, freq="D"))
    f = GRUForecaster(window=25, units=16, epochs=15, batch_size=32, seed=0)
    result = f.backtest(s, test_size=50)
    assert result.rmse < 0.5 * result.persistence_rmse


# ----------------------------------------------------------------------------- other features


def test_update_moves_the_forecast_origin():
    s = _series()
    f = GRUForecaster(**SMALL).fit(s.iloc[:200])
    f.update(s.iloc[200:210])
    out = f.predict(steps=1)
    assert out.index[0] == s.index[210]
    np.testing.assert_allclose(out.to_numpy(), f.predict(steps=1, data=s.iloc[:210]).to_numpy())
    with pytest.raises(ValueError, match="not after the last date"):
        f.update(s.iloc[205:206])
    f.update(s.iloc[210:212].to_numpy())  # plain values: at the fitted frequency
    assert f.predict(steps=1).index[0] == s.index[212]


def test_save_load_round_trip(tmp_path):
    df = _frame()
    f = GRUForecaster(target="Temp", horizon=2, strategy="direct", scaler="standard",
                      **SMALL).fit(df)
    path = tmp_path / "model.fgru"
    f.save(path)
    g = load_forecaster(path)
    assert g.get_params() == f.get_params()
    pd.testing.assert_series_equal(g.predict(), f.predict())
    pd.testing.assert_series_equal(g.predict(data=df.iloc[:150]), f.predict(data=df.iloc[:150]))
    h = GRUForecaster(**SMALL).fit(_series().to_numpy())
    h.save(tmp_path / "arr.npz")
    np.testing.assert_allclose(GRUForecaster.load(tmp_path / "arr.npz").predict(3), h.predict(3))
    irregular = _series(n=100, freq="6h").iloc[np.r_[0:10, 12:40, 41:100]]
    k = GRUForecaster(**SMALL).fit(irregular)
    k.save(tmp_path / "irregular.npz")
    pd.testing.assert_series_equal(load_forecaster(tmp_path / "irregular.npz").predict(2),
                                   k.predict(2))
    (tmp_path / "junk").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a saved GRUForecaster"):
        GRUForecaster.load(tmp_path / "junk")


def test_params_like_sklearn():
    f = GRUForecaster(window=30, units=16)
    p = f.get_params()
    assert p["window"] == 30 and p["units"] == 16 and p["strategy"] == "recursive"
    assert f.set_params(epochs=3) is f and f.epochs == 3
    assert GRUForecaster(**f.get_params()).get_params() == f.get_params()
    assert repr(f) == "GRUForecaster(window=30, units=16, epochs=3)"
    with pytest.raises(ValueError, match="invalid parameter"):
        f.set_params(layers=2)


def test_early_stopping_with_validation_split():
    f = GRUForecaster(**{**SMALL, "epochs": 30}, validation_split=0.2,
                      early_stopping={"patience": 0, "min_delta": 10.0})
    f.fit(_series())
    assert "val_loss" in f.history_.history
    assert len(f.history_.history["loss"]) < 30  # stopped early


def test_scaler_none_and_seed_reproducibility():
    s = _series()
    a = GRUForecaster(scaler=None, **SMALL).fit(s).predict(steps=3)
    b = GRUForecaster(scaler=None, **SMALL).fit(s).predict(steps=3)
    pd.testing.assert_series_equal(a, b)
