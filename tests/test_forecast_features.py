"""GRUForecaster's forecasting features: target transforms undone exactly, conformal
intervals near their nominal coverage, known-future and calendar covariates, a backtest that
leaves the forecaster alone, and a real trending series where they beat seasonal-naive."""
import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import fastgru as fg
from fastgru.forecaster import GRUForecaster, load_forecaster

SMALL = dict(window=12, units=8, epochs=2, batch_size=16, seed=0)


def _daily(n=300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.Series(10 + 3 * np.sin(2 * np.pi * t / 25) + rng.normal(0, 0.5, n),
                     index=pd.date_range("2020-01-01", periods=n, freq="D", name="Date"),
                     name="y")


def _trending_monthly(n=120, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    level = 100 * np.exp(0.01 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12))
    return pd.Series(level * np.exp(rng.normal(0, 0.02, n)),
                     index=pd.date_range("2000-01-01", periods=n, freq="MS", name="Month"),
                     name="sales")


# ----------------------------------------------------------------------------- backtest


def test_backtest_never_changes_the_fitted_forecaster():
    s = _daily()
    f = GRUForecaster(**SMALL).fit(s)
    before = f.predict(steps=2)
    weights = [w.copy() for w in f.model_.get_weights()]
    result = f.backtest(s, test_size=60)
    pd.testing.assert_series_equal(f.predict(steps=2), before)  # still dated after s ends
    assert before.index[0] == s.index[-1] + pd.Timedelta(days=1)
    for a, b in zip(weights, f.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert result.forecaster is not f and result.forecaster.predict(1).index[0] == s.index[-60]
    unfitted = GRUForecaster(**SMALL)
    unfitted.backtest(s, test_size=30)
    assert not hasattr(unfitted, "model_")
    assert f.backtest(s, test_size=30, refit=False).forecaster is f


def test_fit_with_a_separate_y_is_refused():
    s = _daily()
    with pytest.raises(TypeError, match="fit\\(X, y\\) is not supported"):
        GRUForecaster(**SMALL).fit(s.to_frame(), s)


# ----------------------------------------------------------------------------- transforms


def _constant_network(f, bias):
    """Make the fitted network output ``bias`` whatever it sees."""
    weights = [np.zeros_like(w) for w in f.model_.get_weights()]
    weights[-1] = np.full_like(weights[-1], bias)
    f.model_.set_weights(weights)


def test_log_and_differences_are_undone_step_by_step():
    s = _trending_monthly()
    f = GRUForecaster(scaler=None, log=True, difference=(1, 12), calibration_size=None,
                      **SMALL).fit(s)
    _constant_network(f, 2.0 ** -7)  # every difference of differences: 2^-7 (exact in float32)
    out = f.predict(steps=15)
    # the same by hand: z1[t] = 2^-7 + z1[t-12] (z1 = first difference of log), y = cumsum
    logs = list(np.log(s.to_numpy()))
    z1 = list(np.diff(logs))
    for _ in range(15):
        z1.append(2.0 ** -7 + z1[-12])
        logs.append(logs[-1] + z1[-1])
    np.testing.assert_allclose(out.to_numpy(), np.exp(logs[-15:]), rtol=1e-10)
    assert out.index[0] == pd.Timestamp("2010-01-01")


def test_difference_with_minmax_scaling_is_undone():
    s = _trending_monthly()
    f = GRUForecaster(difference=12, calibration_size=None, **SMALL).fit(s)
    _constant_network(f, 0.5)  # mid-range in scaled units
    seasonal = s.to_numpy()[12:] - s.to_numpy()[:-12]
    mid = seasonal.min() + 0.5 * (seasonal.max() - seasonal.min())
    out = f.predict(steps=24).to_numpy()
    np.testing.assert_allclose(out[:12], s.to_numpy()[-12:] + mid, rtol=1e-10)
    np.testing.assert_allclose(out[12:], out[:12] + mid, rtol=1e-10)


def test_log_needs_positive_values_and_says_where():
    s = _trending_monthly()
    s.iloc[30] = -1.0
    with pytest.raises(ValueError, match="positive values.*2002-07-01"):
        GRUForecaster(log=True, **SMALL).fit(s)
    with pytest.raises(TypeError, match="log must be a bool"):
        GRUForecaster(log="yes", **SMALL).fit(_trending_monthly())
    with pytest.raises(ValueError, match="difference lag must be a positive integer"):
        GRUForecaster(difference=(1, 0), **SMALL).fit(_trending_monthly())


def test_update_and_predict_from_data_agree_with_differencing():
    s = _trending_monthly()
    f = GRUForecaster(log=True, difference=12, calibration_size=None, **SMALL).fit(s.iloc[:100])
    f.update(s.iloc[100:110])
    np.testing.assert_allclose(f.predict(5).to_numpy(),
                               f.predict(5, data=s.iloc[:110]).to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="too short.*differencing 12"):
        f.predict(3, data=s.iloc[:20])


# ----------------------------------------------------------------------------- intervals


def test_predict_with_levels_adds_ordered_bounds():
    s = _daily()
    f = GRUForecaster(**SMALL).fit(s)
    out = f.predict(steps=5, level=(95, 80))
    assert list(out.columns) == ["forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    np.testing.assert_allclose(out["forecast"], f.predict(steps=5))
    assert (out.lo_95 <= out.lo_80).all() and (out.lo_80 <= out.forecast).all()
    assert (out.forecast <= out.hi_80).all() and (out.hi_80 <= out.hi_95).all()
    assert f.interval_errors_.shape == (60, 60, 1)  # auto: a fifth of 300 rows
    with pytest.raises(ValueError, match="calibrated for up to 60 steps"):
        f.predict(steps=61, level=80)
    g = GRUForecaster(calibration_size=None, **SMALL).fit(s)
    with pytest.raises(ValueError, match="no prediction intervals"):
        g.predict(3, level=(80,))


def test_backtest_interval_coverage_is_near_nominal():
    s = _daily(n=1000)
    f = GRUForecaster(window=25, units=8, epochs=20, batch_size=32, learning_rate=1e-2, seed=1)
    result = f.backtest(s, test_size=300, level=(80, 95))
    frame = result.predictions
    assert list(frame.columns) == ["actual", "forecast", "persistence", "lo_80", "hi_80",
                                   "lo_95", "hi_95"]
    inside = ((frame.actual >= frame.lo_80) & (frame.actual <= frame.hi_80)).mean()
    assert result.coverage[80.0] == pytest.approx(inside)
    # 300 held-out points: the binomial standard deviation at 80 % is 2.3 points
    assert 0.72 <= result.coverage[80.0] <= 0.90, result
    assert 0.90 <= result.coverage[95.0] <= 0.995, result
    assert "80% interval coverage" in str(result)


def test_log_intervals_are_multiplicative():
    s = _trending_monthly()
    f = GRUForecaster(log=True, difference=12, calibration_size=24, **SMALL).fit(s)
    out = f.predict(6, level=80)
    np.testing.assert_allclose(out.hi_80 / out.forecast, out.forecast / out.lo_80, rtol=1e-10)


# ----------------------------------------------------------------------------- covariates


def _with_workdays(n=400, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2022-01-01", periods=n, freq="D", name="Date")
    workday = (rng.random(n) < 0.6).astype(float)  # irregular: not learnable from the past
    y = 10 + 4 * workday + rng.normal(0, 0.3, n)
    return pd.DataFrame({"y": y, "workday": workday}, index=idx)


def test_known_future_covariates_drive_multi_step_forecasts():
    df = _with_workdays()
    f = GRUForecaster(window=14, units=8, epochs=15, batch_size=16, learning_rate=1e-2, seed=0,
                      future_covariates=["workday"], calibration_size=None).fit(df)
    assert f.target_names_ == ["y"] and f.can_recurse
    future_idx = pd.date_range(df.index[-1] + pd.Timedelta(days=1), periods=14, freq="D")
    workday = np.tile([1.0, 0.0], 7)
    out = f.predict(14, future=pd.DataFrame({"workday": workday}, index=future_idx))
    assert isinstance(out, pd.Series) and out.index.equals(future_idx)
    gap = out[workday == 1].mean() - out[workday == 0].mean()
    assert gap > 2.5, out  # the true effect is 4
    with pytest.raises(ValueError, match="pass their values"):
        f.predict(3)
    with pytest.raises(ValueError, match="not the forecast's"):
        f.predict(3, future=pd.DataFrame({"workday": [1.0, 0, 1]}, index=future_idx[1:4]))
    with pytest.raises(ValueError, match="missing the columns"):
        f.predict(3, future=pd.DataFrame({"holiday": [1.0, 0, 1]}, index=future_idx[:3]))
    np.testing.assert_allclose(f.predict(3, future=workday[:3, None]).to_numpy(),
                               out.to_numpy()[:3])


def test_covariate_settings_are_checked():
    df = _with_workdays(n=100)
    with pytest.raises(ValueError, match="both targets and future_covariates"):
        GRUForecaster(target="workday", future_covariates=["workday"], **SMALL).fit(df)
    with pytest.raises(ValueError, match="strategy='recursive'"):
        GRUForecaster(future_covariates=["workday"], strategy="direct", horizon=3,
                      **SMALL).fit(df)
    with pytest.raises(KeyError, match="holiday"):
        GRUForecaster(future_covariates=["holiday"], **SMALL).fit(df)
    plain = GRUForecaster(calibration_size=None, **SMALL).fit(df["y"])
    with pytest.raises(ValueError, match="future= is for future_covariates"):
        plain.predict(2, future=df[["workday"]].iloc[:2])
    with pytest.raises(ValueError, match="DatetimeIndex"):
        GRUForecaster(calendar=["month"], **SMALL).fit(df["y"].to_numpy())


def test_calendar_features_and_save_load_round_trip(tmp_path):
    s = _trending_monthly()
    df = s.to_frame().assign(promo=np.random.default_rng(1).integers(0, 2, len(s)).astype(float))
    f = GRUForecaster(log=True, difference=12, future_covariates=["promo"], calendar=["month"],
                      calibration_size=24, **SMALL).fit(df)
    future = pd.DataFrame({"promo": [1.0, 0.0, 1.0]},
                          index=pd.date_range("2010-01-01", periods=3, freq="MS"))
    expected = f.predict(3, level=(80, 95), future=future)
    f.save(tmp_path / "m.npz")
    g = load_forecaster(tmp_path / "m.npz")
    assert g.get_params() == f.get_params()
    pd.testing.assert_frame_equal(g.predict(3, level=(80, 95), future=future), expected)


# ----------------------------------------------------------------------------- a real series


def test_log_and_seasonal_difference_beat_seasonal_naive_on_airline_passengers():
    """The classic trending, seasonal monthly series: train on 1949-1959, forecast 1960."""
    s = fg.load_airline_passengers()["Passengers"]
    train, test = s.iloc[:-12], s.iloc[-12:].to_numpy()
    seasonal_naive = train.iloc[-12:].to_numpy()  # each month as a year before
    f = GRUForecaster(window=12, units=16, epochs=100, batch_size=16, learning_rate=1e-2,
                      log=True, difference=12, seed=0).fit(train)
    out = f.predict(12, level=(80, 95))
    rmse = np.sqrt(np.mean((out.forecast.to_numpy() - test) ** 2))
    naive_rmse = np.sqrt(np.mean((seasonal_naive - test) ** 2))
    assert naive_rmse == pytest.approx(50.71, abs=0.01)
    assert rmse < 0.8 * naive_rmse, (rmse, naive_rmse)
    inside = ((test >= out.lo_95.to_numpy()) & (test <= out.hi_95.to_numpy())).mean()
    assert inside >= 0.75


def test_a_failed_refit_leaves_the_fitted_forecaster_as_it_was():
    s = _daily()
    f = GRUForecaster(calibration_size=None, **SMALL).fit(s)
    before = f.predict(3)
    frame = s.to_frame().assign(x=1.0)
    with pytest.raises(ValueError, match="too short"):
        f.fit(frame.iloc[:10])
    pd.testing.assert_series_equal(f.predict(3), before)
