"""Scalers (scikit-learn semantics) and make_windows (views, shapes, errors)."""
import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from fastgru.preprocessing import MinMaxScaler, NotFittedError, StandardScaler, make_windows


# ---------------------------------------------------------------------------------- MinMaxScaler


def test_minmax_matches_hand_computed_values():
    X = np.array([[1.0, -1.0, 2.0], [2.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    s = MinMaxScaler().fit(X)
    np.testing.assert_array_equal(s.data_min_, [0.0, -1.0, -1.0])
    np.testing.assert_array_equal(s.data_max_, [2.0, 1.0, 2.0])
    np.testing.assert_array_equal(s.data_range_, [2.0, 2.0, 3.0])
    np.testing.assert_allclose(s.scale_, [0.5, 0.5, 1 / 3])
    np.testing.assert_allclose(s.min_, [0.0, 0.5, 1 / 3])
    assert s.n_features_in_ == 3 and s.n_samples_seen_ == 3
    expected = np.array([[0.5, 0.0, 1.0], [1.0, 0.5, 1 / 3], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(s.transform(X), expected)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X)


def test_minmax_feature_range_and_clip():
    X = np.array([[0.0], [10.0]])
    s = MinMaxScaler(feature_range=(-1, 1)).fit(X)
    np.testing.assert_allclose(s.transform([[5.0], [20.0]]), [[0.0], [3.0]])
    s = MinMaxScaler(feature_range=(-1, 1), clip=True).fit(X)
    np.testing.assert_allclose(s.transform([[5.0], [20.0]]), [[0.0], [1.0]])


def test_minmax_constant_column_maps_to_range_minimum_like_sklearn():
    X = np.array([[3.0, 1.0], [3.0, 2.0], [3.0, 3.0]])
    s = MinMaxScaler(feature_range=(2, 5)).fit(X)
    assert s.scale_[0] == 3.0  # (hi - lo) / 1: a zero range is treated as 1
    np.testing.assert_allclose(s.transform(X)[:, 0], 2.0)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X)


def test_minmax_bad_feature_range():
    with pytest.raises(ValueError, match="smaller than maximum"):
        MinMaxScaler(feature_range=(1, 0)).fit([[1.0], [2.0]])
    for bad in ((0, np.inf), (-np.inf, 0), (-1e308, 1e308)):  # transform would give inf/NaN
        with pytest.raises(ValueError, match="feature_range must be finite"):
            MinMaxScaler(feature_range=bad).fit([[1.0], [2.0]])


def test_minmax_ignores_nan_in_fit_and_keeps_it_in_transform():
    X = np.array([[1.0], [np.nan], [3.0]])
    s = MinMaxScaler().fit(X)
    assert s.data_min_[0] == 1.0 and s.data_max_[0] == 3.0
    out = s.transform(X)
    assert np.isnan(out[1, 0]) and out[2, 0] == 1.0


def test_one_dimensional_series_round_trips_one_dimensional():
    v = np.array([10.0, 20.0, 15.0, 30.0])
    s = MinMaxScaler()
    out = s.fit_transform(v)
    assert out.shape == (4,)
    np.testing.assert_allclose(out, [0.0, 0.5, 0.25, 1.0])
    back = s.inverse_transform(out)
    assert back.shape == (4,)
    np.testing.assert_allclose(back, v)
    assert s.n_features_in_ == 1
    # a fitted single-feature scaler takes (N, 1) too and keeps it 2-D
    assert s.transform(v[:, None]).shape == (4, 1)


def test_pandas_in_pandas_out_same_index_and_columns():
    idx = pd.date_range("2020-01-01", periods=4, freq="D", name="Date")
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 5.0], "b": [0, 10, 20, 40]}, index=idx)
    for scaler in (MinMaxScaler(), StandardScaler()):
        out = scaler.fit_transform(df)
        assert isinstance(out, pd.DataFrame)
        assert out.index.equals(idx) and list(out.columns) == ["a", "b"]
        assert list(scaler.feature_names_in_) == ["a", "b"]
        back = scaler.inverse_transform(out)
        assert isinstance(back, pd.DataFrame)
        np.testing.assert_allclose(back.to_numpy(), df.to_numpy(dtype=float))
        series = df["a"]
        s_out = type(scaler)().fit_transform(series)
        assert isinstance(s_out, pd.Series)
        assert s_out.index.equals(idx) and s_out.name == "a"


def test_dataframe_with_other_column_names_is_rejected():
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    s = MinMaxScaler().fit(df)
    with pytest.raises(ValueError, match="feature names should match"):
        s.transform(df.rename(columns={"b": "c"}))
    s.transform(df.to_numpy())  # plain arrays are accepted


def test_float32_is_preserved_and_ints_become_float64():
    X32 = np.array([[1.0], [2.0]], dtype=np.float32)
    assert MinMaxScaler().fit_transform(X32).dtype == np.float32
    assert StandardScaler().fit_transform(np.array([[1], [2], [4]])).dtype == np.float64


@pytest.mark.parametrize("cls", [MinMaxScaler, StandardScaler])
def test_transform_before_fit_raises_not_fitted(cls):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        cls().transform([[1.0]])
    with pytest.raises(ValueError):  # NotFittedError is a ValueError, as in scikit-learn
        cls().inverse_transform([[1.0]])


@pytest.mark.parametrize("cls", [MinMaxScaler, StandardScaler])
def test_wrong_feature_count_raises(cls):
    s = cls().fit(np.ones((3, 2)) * [[1.0], [2.0], [3.0]])
    with pytest.raises(ValueError, match="has 3 features, but .* expecting 2"):
        s.transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="has 1 features"):
        s.transform(np.ones(4))


@pytest.mark.parametrize("cls", [MinMaxScaler, StandardScaler])
def test_bad_inputs(cls):
    with pytest.raises(ValueError, match="infinity"):
        cls().fit([[1.0], [np.inf]])
    with pytest.raises(ValueError, match="all NaN"):
        cls().fit([[np.nan], [np.nan]])
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        cls().fit(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="0 samples"):
        cls().fit(np.ones((0, 2)))
    with pytest.raises(ValueError, match="numeric"):
        cls().fit(np.array(["a", "b"]))


def test_get_set_params_like_sklearn():
    s = MinMaxScaler(feature_range=(-1, 1))
    assert s.get_params()["feature_range"] == (-1, 1)
    assert s.set_params(clip=True) is s and s.clip
    with pytest.raises(ValueError, match="invalid parameter"):
        s.set_params(nope=1)
    assert "feature_range=(-1, 1)" in repr(s)


# -------------------------------------------------------------------------------- StandardScaler


def test_standard_matches_hand_computed_values():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    s = StandardScaler().fit(X)
    np.testing.assert_array_equal(s.mean_, [0.5, 0.5])
    np.testing.assert_array_equal(s.var_, [0.25, 0.25])
    np.testing.assert_array_equal(s.scale_, [0.5, 0.5])
    np.testing.assert_array_equal(s.transform([[2.0, 2.0]]), [[3.0, 3.0]])
    v = np.array([1.0, 2.0, 3.0, 4.0])
    s1 = StandardScaler()
    z = s1.fit_transform(v)
    np.testing.assert_allclose(z, (v - 2.5) / np.sqrt(1.25))
    np.testing.assert_allclose(s1.inverse_transform(z), v)


def test_standard_constant_column_gets_unit_scale():
    X = np.array([[7.0, 1.0], [7.0, 3.0]])
    s = StandardScaler().fit(X)
    assert s.scale_[0] == 1.0 and s.var_[0] == 0.0
    np.testing.assert_allclose(s.transform(X)[:, 0], 0.0)


def test_standard_without_mean_or_std():
    X = np.array([[1.0], [3.0]])
    s = StandardScaler(with_mean=False).fit(X)
    assert s.mean_ is None
    np.testing.assert_allclose(s.transform(X), X / 1.0)
    s = StandardScaler(with_std=False).fit(X)
    assert s.scale_ is None and s.var_ is None
    np.testing.assert_allclose(s.transform(X), [[-1.0], [1.0]])
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X)


# ---------------------------------------------------------------------------------- make_windows


def test_make_windows_single_series_values_and_views():
    v = np.arange(20.0)
    X, y = make_windows(v, window=5)
    assert X.shape == (15, 5, 1) and y.shape == (15,)
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(X[-1, :, 0], [14, 15, 16, 17, 18])
    np.testing.assert_array_equal(y, np.arange(5.0, 20.0))
    assert np.shares_memory(X, v) and np.shares_memory(y, v)
    assert not X.flags.writeable


def test_make_windows_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((50, 3))
    X, y = make_windows(v, window=7, horizon=4, target=[2, 0], stride=3)
    starts = range(0, 50 - 7 - 4 + 1, 3)
    X_loop = np.stack([v[s:s + 7] for s in starts])
    y_loop = np.stack([v[s + 7:s + 11][:, [2, 0]] for s in starts])
    np.testing.assert_array_equal(X, X_loop)
    np.testing.assert_array_equal(y, y_loop)


def test_make_windows_shape_rule():
    v1 = np.arange(30.0)
    v3 = np.arange(90.0).reshape(30, 3)
    assert make_windows(v1, 10)[1].shape == (20,)
    assert make_windows(v1, 10, horizon=3)[1].shape == (18, 3)
    assert make_windows(v3, 10, target=1)[1].shape == (20,)  # one target: no target axis
    assert make_windows(v3, 10, horizon=2, target=1)[1].shape == (19, 2)
    assert make_windows(v3, 10, target=[1])[1].shape == (20, 1, 1)  # a list: target axis kept
    assert make_windows(v3, 10)[1].shape == (20, 1, 3)  # None with F > 1: every column
    X, y = make_windows(v3, 10, horizon=2, target=[0, 1])
    assert X.shape == (19, 10, 3) and y.shape == (19, 2, 2)
    assert np.shares_memory(y, v3)  # a contiguous run of columns stays a view
    X, y = make_windows(v1, 10, stride=4)
    assert X.shape == (5, 10, 1)
    np.testing.assert_array_equal(y, [10, 14, 18, 22, 26])


def test_make_windows_dataframe_target_by_name():
    df = pd.DataFrame({"temp": np.arange(12.0), "hum": np.arange(12.0) * 10})
    X, y = make_windows(df, window=4, target="hum")
    assert X.shape == (8, 4, 2)
    np.testing.assert_array_equal(y, np.arange(4.0, 12.0) * 10)
    with pytest.raises(KeyError, match="'rain' not found"):
        make_windows(df, window=4, target="rain")
    with pytest.raises(KeyError, match="no column names"):
        make_windows(df.to_numpy(), window=4, target="hum")
    with pytest.raises(ValueError, match="out of range"):
        make_windows(df, window=4, target=5)


def test_make_windows_too_short_names_lengths():
    with pytest.raises(ValueError, match=r"10 time steps.*window=8 \+ horizon=3.*at least 11"):
        make_windows(np.arange(10.0), window=8, horizon=3)


def test_make_windows_nan_names_positions():
    v = np.arange(20.0)
    v[[3, 11]] = np.nan
    with pytest.raises(ValueError, match=r"NaN at 2 position\(s\): row 3, row 11"):
        make_windows(v, window=5)
    s = pd.Series(v, index=pd.date_range("2021-01-01", periods=20, freq="D"))
    with pytest.raises(ValueError, match="2021-01-04"):
        make_windows(s, window=5)


@pytest.mark.parametrize("kw", [{"window": 0}, {"window": 2.5}, {"window": 3, "horizon": 0},
                                {"window": 3, "stride": -1}, {"window": True}])
def test_make_windows_bad_arguments(kw):
    with pytest.raises(ValueError, match="positive integer"):
        make_windows(np.arange(10.0), **kw)


def test_make_windows_int_input_is_converted():
    X, y = make_windows(np.arange(10), window=3)
    assert X.dtype == np.float64 and y.dtype == np.float64
