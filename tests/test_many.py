"""forecast_many / backtest_many: long frames, local and global modes, errors, process pool and
a real dask LocalCluster (processes), a worker killed mid-run. Tiny models: seconds in all."""
import os
import signal
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

import fastgru
from fastgru import GRUForecaster, backtest_many, forecast_many
from fastgru.many import Progress
from fastgru.many.executors import run_tasks

TINY = dict(window=6, units=4, epochs=2, batch_size=16, seed=0)


def long_frame(n_series=5, seed=0):
    """Series of different lengths, starts and frequencies (daily, hourly, month starts)."""
    rng = np.random.default_rng(seed)
    freqs = ["D", "h", "MS", "D", "15min"]
    parts = []
    for i in range(n_series):
        n = 30 + 7 * i
        t = np.arange(n)
        parts.append(pd.DataFrame({
            "unique_id": f"s{i}",
            "ds": pd.date_range(f"202{i % 4}-0{1 + i % 9}-01", periods=n, freq=freqs[i % 5]),
            "y": 5.0 * i + np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.1, n),
        }))
    return pd.concat(parts, ignore_index=True)


def one_series(df, sid):
    rows = df[df["unique_id"] == sid]
    return pd.Series(rows["y"].to_numpy(), index=pd.DatetimeIndex(rows["ds"]))


def with_bad_series(df):
    bad = pd.DataFrame({
        "unique_id": ["short"] * 3 + ["all_nan"] * 20 + ["dup"] * 20,
        "ds": [*pd.date_range("2020-01-01", periods=3), *pd.date_range("2020-01-01", periods=20),
               *pd.date_range("2020-01-01", periods=19), pd.Timestamp("2020-01-05")],
        "y": [1.0, 2.0, 3.0] + [np.nan] * 20 + list(np.arange(20.0)),
    })
    return pd.concat([bad.iloc[:3], df, bad.iloc[3:]], ignore_index=True)


# ------------------------------------------------------------------------------ local


def test_each_series_is_its_own_forecaster_with_its_own_dates():
    df = long_frame()
    out = forecast_many(df.sample(frac=1.0, random_state=0), horizon=3, n_jobs=1, **TINY)
    assert list(out.columns) == ["unique_id", "ds", "y_hat"]
    for sid in df["unique_id"].unique():
        alone = GRUForecaster(horizon=3, **TINY).fit(one_series(df, sid)).predict(3)
        got = out[out["unique_id"] == sid]
        assert list(got["ds"]) == list(alone.index)  # its own frequency, after its own end
        np.testing.assert_array_equal(got["y_hat"].to_numpy(), alone.to_numpy())


def test_series_come_back_in_the_order_their_ids_first_appear():
    df = long_frame(3)
    order = ["s2", "s0", "s1"]
    shuffled = pd.concat([df[df["unique_id"] == s] for s in order])
    out = forecast_many(shuffled, 2, n_jobs=1, **TINY)
    assert list(out["unique_id"].unique()) == order


def test_integer_times_and_integer_ids():
    df = pd.DataFrame({"id": np.repeat([7, 3], 25), "t": np.tile(np.arange(10, 35), 2),
                       "v": np.sin(np.arange(50.0))})
    out = forecast_many(df, 2, id_col="id", time_col="t", target_col="v", n_jobs=1, **TINY)
    assert out["id"].tolist() == [7, 7, 3, 3]
    assert out["t"].tolist() == [35, 36, 35, 36]


def test_series_that_cannot_be_fitted_are_listed_and_the_rest_finish():
    df = with_bad_series(long_frame(3))
    out, errors = forecast_many(df, 2, n_jobs=1, return_errors=True, **TINY)
    assert sorted(out["unique_id"].unique()) == ["s0", "s1", "s2"]
    assert errors["unique_id"].tolist() == ["short", "all_nan", "dup"]
    reasons = dict(zip(errors["unique_id"], errors["reason"]))
    assert "too short" in reasons["short"]
    assert "NaN" in reasons["all_nan"]
    assert "duplicate" in reasons["dup"]
    with pytest.warns(UserWarning, match=r"3 of 6 series could not be fitted .*short"):
        again = forecast_many(df, 2, n_jobs=1, **TINY)
    pd.testing.assert_frame_equal(again, out, check_exact=True)


def test_process_pool_gives_the_same_bits_with_one_kernel_thread_per_worker():
    df = long_frame(4)
    alone = forecast_many(df, 3, n_jobs=1, **TINY)  # in this process, the kernels' threads
    seen = []
    env = dict(os.environ)
    pooled = forecast_many(df, 3, n_jobs=2, series_per_task=1, progress=seen.append, **TINY)
    pd.testing.assert_frame_equal(pooled, alone, check_exact=True)
    assert seen[-1].tasks_total == 4 and seen[-1].series_done == 4
    assert run_tasks(_kernel_threads, [[0], [1]], n_jobs=2) == [(1, "1"), (1, "1")]
    assert dict(os.environ) == env  # the one-thread settings were for the workers only


def test_a_pool_worker_killed_mid_run_loses_no_series():
    import multiprocessing

    df = long_frame(4)
    params = dict(TINY, epochs=15)
    alone = forecast_many(df, 3, n_jobs=1, **params)
    before = {p.pid for p in multiprocessing.active_children()}
    seen = []

    def kill_a_worker_after_the_first_task(info: Progress):
        seen.append(info)
        if len(seen) == 1:
            workers = [p for p in multiprocessing.active_children() if p.pid not in before]
            os.kill(workers[0].pid, signal.SIGKILL)

    pooled = forecast_many(df, 3, n_jobs=2, series_per_task=1,
                           progress=kill_a_worker_after_the_first_task, **params)
    pd.testing.assert_frame_equal(pooled, alone, check_exact=True)
    assert seen[-1].resubmitted > 0 and seen[-1].series_done == 4


def test_default_jobs_use_every_core_but_not_for_a_few_series():
    from fastgru._config import usable_cores
    from fastgru.many.executors import default_jobs

    assert default_jobs(3) == 1  # a pool's start would cost more than it saves
    assert default_jobs(10**6) == usable_cores()


def _kernel_threads(batch):
    return fastgru.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def test_global_mode_one_model_for_all_series():
    df = with_bad_series(long_frame(4))
    out, errors = forecast_many(df, 3, mode="global", return_errors=True, **TINY)
    assert sorted(out["unique_id"].unique()) == ["s0", "s1", "s2", "s3"]
    assert errors["unique_id"].tolist() == ["short", "all_nan", "dup"]
    local = forecast_many(long_frame(4), 3, n_jobs=1, **TINY)
    assert list(out["ds"]) == list(local["ds"])  # the same future dates as the local mode
    again = forecast_many(df, 3, mode="global", return_errors=True, **TINY)[0]
    pd.testing.assert_frame_equal(again, out, check_exact=True)  # seeded
    # the forecasts are in each series' own units: the levels 0, 5, 10, 15 come back
    means = out.groupby("unique_id")["y_hat"].mean()
    assert np.all(np.abs(means.to_numpy() - [0, 5, 10, 15]) < 3)
    with pytest.raises(ValueError, match=r"mode='global' does not take \['strategy'\]"):
        forecast_many(df, 3, mode="global", strategy="direct", **TINY)


def test_backtest_many_matches_each_series_backtest_and_summarises():
    df = with_bad_series(long_frame(3))
    result = backtest_many(df, test_size=5, n_jobs=1, **TINY)
    assert result.errors["unique_id"].tolist() == ["short", "all_nan", "dup"]
    assert list(result.metrics.columns) == ["unique_id", "n_test", "rmse", "mae",
                                            "persistence_rmse", "persistence_mae", "skill"]
    for _, row in result.metrics.iterrows():
        alone = GRUForecaster(**TINY).backtest(one_series(df, row["unique_id"]), test_size=5)
        assert row["rmse"] == alone.rmse and row["persistence_mae"] == alone.persistence_mae
        assert row["skill"] == pytest.approx(alone.skill)
    m = result.metrics
    assert result.summary == {
        "n_series": 6, "n_fitted": 3, "n_failed": 3,
        "share_beating_persistence": float(np.mean(m["rmse"] < m["persistence_rmse"])),
        "median_skill": float(np.median(m["skill"]))}
    assert list(result.predictions.columns) == ["unique_id", "ds", "y", "y_hat", "persistence"]
    assert len(result.predictions) == 15
    assert "3 of 6 series fitted" in str(result)


def test_backtest_many_when_every_series_fails_lists_them_all():
    df = long_frame(2)
    result = backtest_many(df, test_size=10 ** 6, n_jobs=1, **TINY)
    assert result.summary["n_fitted"] == 0 and result.summary["n_failed"] == 2
    assert np.isnan(result.summary["share_beating_persistence"])
    assert len(result.metrics) == 0 and result.metrics["rmse"].dtype == np.float64
    assert len(result.errors) == 2 and len(result.predictions) == 0
    assert str(result) == "0 of 2 series fitted (2 failed); see .errors for why"


def test_backtest_many_global_holds_out_each_tail():
    df = long_frame(3)
    result = backtest_many(df, test_size=0.2, mode="global", **TINY)
    sizes = df.groupby("unique_id").size()
    assert result.metrics["n_test"].tolist() == [round(0.2 * sizes[s]) for s in ["s0", "s1", "s2"]]
    tail = result.predictions[result.predictions["unique_id"] == "s1"]
    y = one_series(df, "s1").to_numpy()  # 37 rows: 7 held out
    np.testing.assert_array_equal(tail["y"].to_numpy(), y[-7:])
    np.testing.assert_array_equal(tail["persistence"].to_numpy(), y[-8:-1])


def _trending_frame(n_series=4, n=80):
    """Rising series at different levels and slopes, positive (for log)."""
    rng = np.random.default_rng(3)
    parts = []
    for i in range(n_series):
        t = np.arange(n)
        parts.append(pd.DataFrame({
            "unique_id": f"t{i}", "ds": pd.date_range("2020-01-01", periods=n, freq="MS"),
            "y": 50.0 + 20 * i + (1.0 + 0.5 * i) * t + rng.normal(0, 0.5, n)}))
    return pd.concat(parts, ignore_index=True)


def test_global_mode_differences_carry_a_trend_past_the_training_range():
    df = _trending_frame()
    params = dict(window=8, units=8, epochs=30, batch_size=16, seed=0)
    plain = forecast_many(df, 12, mode="global", **params)
    diffed = forecast_many(df, 12, mode="global", difference=1, **params)
    logged = forecast_many(df, 12, mode="global", difference=1, log=True, **params)
    top = df.groupby("unique_id")["y"].max()
    for out in (diffed, logged):  # a trend carries on: every series ends above its maximum
        last = out.groupby("unique_id")["y_hat"].last()
        assert (last > top).all(), (last, top)
    assert not (plain.groupby("unique_id")["y_hat"].last() > top + 5).all()
    # one-step backtest: each held-out row from the actual rows before it, integrated back
    bt = backtest_many(df, test_size=6, mode="global", difference=1, **params)
    assert bt.metrics["rmse"].max() < 5 * bt.metrics["persistence_rmse"].max()
    tail = bt.predictions[bt.predictions["unique_id"] == "t2"]
    np.testing.assert_array_equal(tail["y"].to_numpy(), one_series(df, "t2").to_numpy()[-6:])


def test_global_mode_reports_series_that_log_or_difference_cannot_take():
    df = pd.concat([_trending_frame(2), pd.DataFrame({
        "unique_id": "negative", "ds": pd.date_range("2020-01-01", periods=40, freq="MS"),
        "y": np.linspace(-5, 5, 40)}), pd.DataFrame({
        "unique_id": "short", "ds": pd.date_range("2020-01-01", periods=9, freq="MS"),
        "y": np.arange(1.0, 10.0)})], ignore_index=True)
    out, errors = forecast_many(df, 2, mode="global", log=True, difference=1, window=8,
                                units=4, epochs=2, seed=0, return_errors=True)
    assert sorted(out["unique_id"].unique()) == ["t0", "t1"]
    reasons = dict(zip(errors["unique_id"], errors["reason"]))
    assert "log=True needs positive values" in reasons["negative"]
    assert "difference=(1,) needs at least 10" in reasons["short"]
    with pytest.raises(TypeError, match="log must be a bool"):
        forecast_many(df, 2, mode="global", log="yes", **TINY)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(df=[1, 2]), TypeError, "must be a pandas DataFrame"),
    (dict(id_col="series"), ValueError, r"no column for id_col='series'"),
    (dict(time_col="unique_id"), ValueError, "three different columns"),
    (dict(horizon=0), ValueError, "horizon must be a positive integer"),
    (dict(mode="both"), ValueError, "mode must be one of"),
    (dict(n_jobs=0), ValueError, "n_jobs must be a positive integer"),
    (dict(series_per_task=0), ValueError, "series_per_task must be a positive integer"),
    (dict(unit=3), TypeError, r"unknown GRUForecaster parameter\(s\) \['unit'\]"),
    (dict(client=object()), TypeError, "client must be a dask.distributed.Client"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    args = dict(df=long_frame(2), horizon=2, n_jobs=1, **TINY)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        forecast_many(**args)


def test_bad_columns_name_themselves():
    df = long_frame(2)
    with pytest.raises(ValueError, match="id_col 'unique_id' is missing in 1 row"):
        forecast_many(df.assign(unique_id=df["unique_id"].where(df.index != 3)), 2, **TINY)
    with pytest.raises(ValueError, match="target_col 'y' must be real numbers"):
        forecast_many(df.assign(y="a"), 2, **TINY)
    with pytest.raises(ValueError, match="target_col 'y' must be real numbers.*complex"):
        forecast_many(df.assign(y=df["y"] + 1j), 2, **TINY)
    with pytest.raises(ValueError, match="time_col 'ds' must hold dates or numbers"):
        forecast_many(df.assign(ds="soon"), 2, **TINY)
    with pytest.raises(ValueError, match=r"fractional test_size must be in \(0, 1\)"):
        backtest_many(df, 1.5, **TINY)


def test_client_without_dask_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastgru\[dask\]'"):
        forecast_many(long_frame(2), 2, client=object(), **TINY)


# ------------------------------------------------------------------------------ dask


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_cluster_gives_the_local_bits_per_series(client, capsys):
    df = with_bad_series(long_frame(5))
    local, local_errors = forecast_many(df, 3, n_jobs=1, return_errors=True, **TINY)
    remote, remote_errors = forecast_many(df, 3, client=client, return_errors=True, **TINY)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    pd.testing.assert_frame_equal(remote_errors, local_errors)
    assert "forecast_many: 8/8 series (8/8 tasks)" in capsys.readouterr().err  # 4 per thread

    glocal = forecast_many(df, 3, mode="global", return_errors=True, **TINY)[0]
    gremote = forecast_many(df, 3, mode="global", client=client, return_errors=True, **TINY)[0]
    pd.testing.assert_frame_equal(gremote, glocal, check_exact=True)

    bt_local = backtest_many(df, 4, n_jobs=1, **TINY)
    bt_remote = backtest_many(df, 4, client=client, progress=False, **TINY)
    pd.testing.assert_frame_equal(bt_remote.metrics, bt_local.metrics, check_exact=True)
    assert bt_remote.summary == bt_local.summary


def test_a_worker_killed_mid_run_loses_no_series(client):
    client.wait_for_workers(2)
    df = long_frame(5)
    params = dict(TINY, epochs=15)
    local = forecast_many(df, 3, n_jobs=1, **params)
    seen = []

    def kill_a_worker_after_the_first_task(info: Progress):
        seen.append(info)
        if len(seen) == 1:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)

    remote = forecast_many(df, 3, client=client, series_per_task=1,
                           progress=kill_a_worker_after_the_first_task, **params)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert seen[-1].series_done == 5
    assert seen[-1].resubmitted > 0  # the kill did lose work, and it was sent again
    client.wait_for_workers(2)  # the nanny restarts it


# ------------------------------------------------------------------------------ CLI

CLI_TINY = ["--window", "6", "--units", "4", "--epochs", "2", "--seed", "0", "--jobs", "1"]


def _write_long_csv(path):
    df = with_bad_series(long_frame(3)).rename(columns={"unique_id": "meter", "ds": "when",
                                                        "y": "kwh"})
    df.to_csv(path, index=False)
    return df


def test_cli_fit_many_writes_forecasts_and_errors(tmp_path, capsys):
    from fastgru import cli

    src, out, errs = tmp_path / "long.csv", tmp_path / "out.csv", tmp_path / "errors.csv"
    _write_long_csv(src)
    rc = cli.main(["fit-many", str(src), "--id-col", "meter", "--time-col", "when", "--target",
                   "kwh", "--horizon", "4", "-o", str(out), "--errors", str(errs), *CLI_TINY])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "3 of 6 series could not be fitted" in captured.err
    assert "forecast 3 series x 4 steps (local mode)" in captured.out
    got = pd.read_csv(out)
    assert list(got.columns) == ["meter", "when", "y_hat"] and len(got) == 12
    assert pd.read_csv(errs)["meter"].tolist() == ["short", "all_nan", "dup"]


def test_cli_fit_many_on_a_scheduler_writes_the_same_file(tmp_path, client, capsys):
    from fastgru import cli

    src = tmp_path / "long.csv"
    _write_long_csv(src)
    common = ["fit-many", str(src), "--id-col", "meter", "--time-col", "when", "--target", "kwh",
              "--horizon", "3", "-q", *CLI_TINY]
    assert cli.main([*common, "-o", str(tmp_path / "local.csv")]) == 0
    assert cli.main([*common, "-o", str(tmp_path / "remote.csv"), "--scheduler",
                     client.scheduler.address]) == 0
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "remote.csv").read_text()


def test_cli_fit_many_errors_are_one_line(tmp_path, capsys, monkeypatch):
    from fastgru import cli

    src = tmp_path / "long.csv"
    _write_long_csv(src)
    assert cli.main(["fit-many", str(tmp_path / "nope.csv"), "--horizon", "2", "-o", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["fit-many", str(src), "--horizon", "2", "-o", "x", *CLI_TINY]) == 2
    assert "no column for id_col='unique_id'" in capsys.readouterr().err
    pd.DataFrame({"unique_id": "a", "ds": ["2020-01-01", "2020-01-02"], "y": [1.0, 2.0]}).to_csv(
        tmp_path / "short.csv", index=False)
    assert cli.main(["fit-many", str(tmp_path / "short.csv"), "--horizon", "2", "-o", "x"]) == 2
    assert "no series could be fitted" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert cli.main(["fit-many", str(src), "--horizon", "2", "-o", "x", "--scheduler",
                     "tcp://127.0.0.1:1"]) == 2
    assert "pip install 'fastgru[dask]'" in capsys.readouterr().err
