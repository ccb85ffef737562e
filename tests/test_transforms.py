"""Target transforms (LogTransformer, Differencer, difference/undifference), the conformal
radius and the calendar features: checked against plain loops and known numbers."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pd = pytest.importorskip("pandas")

from fastgru import timeindex
from fastgru.intervals import check_levels, conformal_radius, interval_columns
from fastgru.preprocessing import (Differencer, LogTransformer, NotFittedError, difference,
                                   undifference)


def _levels(n=60, f=2, seed=0):
    rng = np.random.default_rng(seed)
    return 100 + np.cumsum(rng.normal(size=(n, f)), axis=0)


def _loop_difference(x, lags):
    for lag in lags:
        x = np.array([x[t] - x[t - lag] for t in range(lag, len(x))])
    return x


@pytest.mark.parametrize("lags", [(1,), (12,), (1, 12), (12, 1), (3, 1, 2)])
def test_difference_matches_a_loop_and_undifference_inverts_it(lags):
    x = _levels()
    d = difference(x, lags)
    np.testing.assert_allclose(d, _loop_difference(x, lags))
    shift = sum(lags)
    np.testing.assert_allclose(undifference(d, x[:shift], lags), x[shift:], rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(lags=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       split=st.integers(0, 20), seed=st.integers(0, 1000))
def test_undifference_continues_any_history_for_any_number_of_steps(lags, split, seed):
    x = _levels(n=50, f=1, seed=seed)
    shift = sum(lags)
    cut = shift + split
    future = difference(x, lags)[cut - shift:]  # the differences of x[cut:]
    np.testing.assert_allclose(undifference(future, x[:cut], lags), x[cut:], rtol=1e-12)


def test_undifference_works_on_a_batch_of_histories():
    x = np.stack([_levels(seed=s) for s in range(3)])  # (3, 60, 2)
    d = difference(x, (1, 12))
    np.testing.assert_allclose(undifference(d[:, -5:], x[:, :-5], (1, 12)), x[:, -5:])


def test_differencer_transformer_round_trip_and_continuation():
    s = pd.Series(_levels(f=1)[:, 0], index=pd.date_range("2000", periods=60, freq="MS"))
    dif = Differencer(lags=(1, 12)).fit(s.iloc[:48])
    d = dif.transform(s)
    assert isinstance(d, pd.Series) and d.index.equals(s.index[13:])
    # the differences after the fitted part continue it, any number of steps
    pd.testing.assert_series_equal(dif.inverse_transform(d.iloc[-12:]), s.iloc[48:],
                                   check_freq=False)
    back = dif.inverse_transform(d, history=s.iloc[:13])
    np.testing.assert_allclose(back.to_numpy(), s.iloc[13:].to_numpy())
    with pytest.raises(ValueError, match="needs more than 13"):
        Differencer((1, 12)).fit(s.iloc[:13])
    with pytest.raises(ValueError, match="positive integer"):
        Differencer(0).fit(s)
    with pytest.raises(NotFittedError):
        Differencer().transform(s)


def test_log_transformer_and_a_clear_error_for_non_positive_values():
    s = pd.Series([1.0, 2.0, 4.0], index=pd.date_range("2020", periods=3, freq="D"))
    lt = LogTransformer().fit(s)
    np.testing.assert_allclose(lt.transform(s), np.log([1, 2, 4]))
    pd.testing.assert_series_equal(lt.inverse_transform(lt.transform(s)), s)
    bad = s.copy()
    bad.iloc[1] = 0.0
    with pytest.raises(ValueError, match="positive values.*2020-01-02"):
        LogTransformer().fit(bad)
    with pytest.raises(ValueError, match="positive"):
        lt.transform(-s)


def test_conformal_radius_is_the_finite_sample_rank():
    errors = np.arange(1.0, 21.0).reshape(1, 20, 1)  # 20 errors 1..20 at one step
    r = conformal_radius(errors, (80, 95))
    assert r[0, 0, 0] == 17.0  # ceil(21 * 0.80) = 17th smallest
    assert r[1, 0, 0] == 20.0  # ceil(21 * 0.95) = 20th
    few = np.array([[[3.0], [1.0], [np.nan]]])  # 2 measured: too few for 95 %: the largest
    assert conformal_radius(few, (95,))[0, 0, 0] == 3.0


def test_levels_and_column_names():
    assert check_levels(None) == ()
    assert check_levels((95, 80)) == (80.0, 95.0)
    assert interval_columns((80, 97.5)) == ["lo_80", "hi_80", "lo_97.5", "hi_97.5"]
    # close levels keep distinct names, and no name claims a level of 100
    names = interval_columns(check_levels((80.0000001, 80.0000002, 99.99999999)))
    assert len(set(names)) == 6 and "hi_99.99999999" in names and "hi_100" not in names
    for bad in (0, 100, (80, 120), "80", (True,)):
        with pytest.raises((ValueError, TypeError), match="level"):
            check_levels(bad)


def test_calendar_features_are_sine_cosine_pairs():
    idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-07-01 06:00", "2024-12-01 18:00"])
    feats = timeindex.calendar_features(idx, ["month", "hour"])
    assert feats.shape == (3, 4)
    np.testing.assert_allclose(feats[0], [0.0, 1.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(feats[1, :2], [np.sin(np.pi), np.cos(np.pi)], atol=1e-12)
    np.testing.assert_allclose(feats[2, 2:], [-1.0, 0.0], atol=1e-12)  # 18:00 = 3/4 of a day
    assert timeindex.calendar_feature_names(["month"]) == ["month_sin", "month_cos"]
    with pytest.raises(ValueError, match="unknown"):
        timeindex.check_calendar(["week"])
    with pytest.raises(ValueError, match="DatetimeIndex"):
        timeindex.calendar_features(pd.RangeIndex(3), ["month"])


def test_gaps_are_found_where_the_spacing_jumps():
    regular = pd.date_range("2024-01-01", periods=30, freq="D")
    assert timeindex.gaps(regular) == (0, [])
    assert timeindex.gaps(pd.date_range("2020-01-01", periods=30, freq="MS"))[0] == 0
    holed = regular.delete([10, 11, 20])
    count, pairs = timeindex.gaps(holed)
    assert count == 2 and pairs[0] == (pd.Timestamp("2024-01-10"), pd.Timestamp("2024-01-13"))
