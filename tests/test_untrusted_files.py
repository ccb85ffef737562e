"""Model and forecaster files from elsewhere: refused cheaply, always as a ValueError naming the
file (or loaded as a working model), and saving that respects what is at the destination."""
import io
import json
import os
import stat
import sys
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgru as fg
from fastgru import cli
from fastgru.saving import load_model

pd = pytest.importorskip("pandas")

# A refusal must not allocate anything near what the file claims: the files below claim 100 MB
# or more, a refusal may use a few.
REFUSAL_BYTES = 20 << 20
# bounded property tests: the suite stays fast
FILE_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])


# ------------------------------------------------------------------------------------ helpers
def _members(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write(path, members: dict, compress: tuple = ()) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            kind = zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED
            z.writestr(name, data, compress_type=kind)


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=True)  # object arrays: pickled members
    return buf.getvalue()


def _json_member(members: dict, name: str):
    return json.loads(str(np.load(io.BytesIO(members[name + ".npy"]))[()]))


def _with_json(members: dict, name: str, doc) -> dict:
    return dict(members, **{name + ".npy": _npy(np.array(json.dumps(doc)))})


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = fg.Sequential([fg.GRU(4, return_sequences=True, seed=1), fg.GRU(3, seed=2),
                           fg.Dense(2, activation="tanh", seed=3)])
    model.compile(optimizer="adam", loss="mse")
    model.build((None, 5, 2))
    path = tmp_path_factory.mktemp("files") / "good.npz"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def forecaster_file(tmp_path_factory):
    t = np.arange(80)
    series = pd.Series(np.sin(t / 5.0), index=pd.date_range("2022-01-01", periods=80, freq="D"))
    f = fg.GRUForecaster(window=6, units=4, epochs=1, seed=0, verbose=0).fit(series)
    path = tmp_path_factory.mktemp("files") / "forecaster.npz"
    f.save(path)
    return path


def _refused(load, path):
    with pytest.raises(ValueError, match=str(path.name)):
        load(path)


# ------------------------------------------------------------------------- cases from the issue
def test_a_small_file_claiming_a_large_model_is_refused_before_any_layer_is_built(model_file, tmp_path):
    members = _members(model_file)
    config = _json_member(members, "__config__")
    config["model"]["layers"][0]["config"]["units"] = 2000  # 2000 x 6000 weights: ~100 MB
    bad = tmp_path / "claims_big.npz"
    _write(bad, _with_json(members, "__config__", config))
    assert bad.stat().st_size < 10_000
    assert _peak_bytes(lambda: _refused(load_model, bad)) < REFUSAL_BYTES


def test_a_member_that_inflates_past_the_file_size_is_refused_before_reading(model_file, tmp_path):
    members = _members(model_file)
    big = 64 << 20  # 64 MB of zeros deflate to ~64 kB
    header = _npy_header((big // 4,), np.float32)  # a genuine header for what it inflates to
    bad = tmp_path / "inflates.npz"
    _write_inflating(bad, members, "weight_0.npy", header, big)
    assert bad.stat().st_size < 2 << 20
    assert _peak_bytes(lambda: _refused(load_model, bad)) < REFUSAL_BYTES


def _npy_header(shape, dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(shape)})
    return buf.getvalue()  # magic string included


def _write_inflating(path, members, name, header, zeros):
    """``members`` with ``name`` replaced by a deflated member: ``header`` then ``zeros`` bytes."""
    with zipfile.ZipFile(path, "w") as z:
        for other, data in members.items():
            if other != name:
                z.writestr(other, data)
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            f.write(header)
            chunk = bytes(1 << 20)
            for _ in range(zeros // len(chunk)):
                f.write(chunk)


def test_a_header_claiming_a_huge_shape_is_a_value_error_not_memory_error(model_file, tmp_path):
    members = _members(model_file)
    bad = tmp_path / "huge_shape.npz"
    _write(bad, dict(members, **{"weight_0.npy": _npy_header((10 ** 12,), np.float32) + bytes(16)}))
    assert _peak_bytes(lambda: _refused(load_model, bad)) < REFUSAL_BYTES


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
@pytest.mark.parametrize("load", [load_model, fg.GRUForecaster.load], ids=["model", "forecaster"])
def test_a_fifo_is_refused_instead_of_blocking(tmp_path, load):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome = {}

    def run():
        try:
            load(fifo)
        except Exception as exc:  # noqa: BLE001 - the test looks at what came out
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # unblock the reader so the process can exit
        with open(fifo, "wb"):
            pass
        pytest.fail("loading a FIFO blocked")
    assert isinstance(outcome.get("error"), ValueError)
    assert "pipe.npz" in str(outcome["error"]) and "regular file" in str(outcome["error"])


@pytest.mark.parametrize("load", [load_model, fg.GRUForecaster.load], ids=["model", "forecaster"])
def test_directories_and_devices_are_refused(tmp_path, load):
    with pytest.raises(ValueError, match="regular file"):
        load(tmp_path)
    if os.path.exists(os.devnull) and os.name == "posix":
        with pytest.raises(ValueError, match="regular file"):
            load(os.devnull)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load(tmp_path / "nope.npz")


def _forecaster_damages(good, tmp_path):
    """(name, bytes) of damaged forecaster files, one per way the old loader broke."""
    raw = good.read_bytes()
    members = _members(good)
    meta = _json_member(members, "meta")
    out = [("empty", b""), ("truncated", raw[: len(raw) // 2]), ("garbage", b"PK\x03\x04" + bytes(99)),
           ("tail_cut", raw[:-10])]

    def edited(name, change):
        doc = json.loads(json.dumps(meta))
        change(doc)
        buf = io.BytesIO()
        _write(buf, _with_json(members, "meta", doc))
        out.append((name, buf.getvalue()))

    edited("no_params", lambda d: d.pop("params"))
    edited("params_list", lambda d: d.__setitem__("params", [1, 2]))
    edited("unknown_param", lambda d: d["params"].__setitem__("colour", "red"))
    edited("meta_list", lambda d: (d.clear(), None))
    edited("units_huge", lambda d: d["params"].__setitem__("units", 5000))
    edited("window_huge", lambda d: d["params"].__setitem__("window", 10 ** 9))
    edited("bad_index", lambda d: d.__setitem__("last_index", {"timestamp": "not a date"}))
    edited("bad_freq", lambda d: d.__setitem__("freq", {"offset": "fortnightly-ish"}))
    edited("scaler_kind", lambda d: d["scaler"].__setitem__("n_features_in", "x"))
    edited("positions", lambda d: d.__setitem__("positions", [7]))
    edited("no_history_ok_but_bad_out_steps", lambda d: d.__setitem__("out_steps", "two"))
    buf = io.BytesIO()
    _write(buf, {k: v for k, v in members.items() if k != "context.npy"})
    out.append(("no_context", buf.getvalue()))
    buf = io.BytesIO()
    _write(buf, dict(members, **{"meta.npy": _npy(np.array([{"a": 1}], dtype=object))}))
    out.append(("pickled_meta", buf.getvalue()))
    buf = io.BytesIO()
    _write(buf, dict(members, **{"weight_1.npy": _npy_header((10 ** 12,), np.float32)}))
    out.append(("huge_shape", buf.getvalue()))
    for name, errors in [("errors_0d", np.array(1.0)), ("errors_1d", np.ones(3)),
                         ("errors_2d", np.ones((3, 4))), ("errors_targets", np.ones((3, 4, 2))),
                         ("errors_empty", np.ones((0, 4, 1))), ("errors_negative", -np.ones((3, 4, 1))),
                         ("errors_inf", np.full((3, 4, 1), np.inf))]:
        buf = io.BytesIO()  # prediction-interval calibration errors: (steps, origins, targets)
        _write(buf, dict(members, **{"interval_errors.npy": _npy(errors)}))
        out.append((name, buf.getvalue()))
    return out


def test_damaged_forecaster_files_raise_value_error_naming_the_file(forecaster_file, tmp_path):
    for name, data in _forecaster_damages(forecaster_file, tmp_path):
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(data)
        peak = _peak_bytes(lambda: _refused(fg.GRUForecaster.load, bad))
        assert peak < REFUSAL_BYTES, name


# ------------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("content", [b"", "half"], ids=["empty", "truncated"])
def test_cli_predict_with_a_damaged_model_prints_one_line(forecaster_file, tmp_path, capsys, content):
    bad = tmp_path / "m.npz"
    raw = forecaster_file.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2] if content == "half" else content)
    assert cli.main(["predict", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "m.npz" in err


def test_cli_fit_with_too_many_units_prints_one_line(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"y": np.sin(np.arange(60) / 4.0)}).to_csv(csv, index=False)
    # 10^6 units: 3 * 10^12 recurrent weights, more memory than any machine has
    rc = cli.main(["fit", str(csv), "--target", "y", "--window", "5", "--units", "1000000",
                   "--epochs", "1", "-o", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "memory" in err


# -------------------------------------------------------------------------------------- saving
@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_save_keeps_the_permissions_of_the_file_it_replaces(model_file, tmp_path):
    model = load_model(model_file)
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    model.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    os.chmod(path, 0o640)
    model.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    fresh = tmp_path / "new.npz"
    old_umask = os.umask(0o022)
    try:
        model.save(fresh)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o644  # what open() would have made


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name != "posix", reason="symlinks")
def test_save_through_a_symlink_replaces_its_target_and_keeps_the_link(model_file, tmp_path):
    model = load_model(model_file)
    target = tmp_path / "models" / "v2.npz"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "current.npz"
    os.symlink(target, link)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    X = np.ones((1, 5, 2), np.float32)
    np.testing.assert_array_equal(load_model(target).predict(X), model.predict(X))
    assert sorted(os.listdir(target.parent)) == ["v2.npz"]  # no temporary file left


def test_save_errors_name_the_destination(model_file, tmp_path):
    model = load_model(model_file)
    missing = tmp_path / "no_such_dir" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        model.save(missing)
    assert str(missing) in str(info.value) and ".tmp" not in str(info.value)
    with pytest.raises((ValueError, IsADirectoryError), match="regular file"):
        model.save(tmp_path)  # a directory is not replaced


# ------------------------------------------------------------------- mutated files (properties)
def _mutations():
    flip = st.tuples(st.just("flip"), st.integers(0, 10 ** 6), st.integers(0, 7))
    cut = st.tuples(st.just("truncate"), st.integers(0, 10 ** 6), st.just(0))
    swap = st.tuples(st.just("swap"), st.integers(0, 50), st.integers(0, 50))
    shape = st.tuples(st.just("shape"), st.integers(0, 50),
                      st.lists(st.integers(0, 10 ** 9), max_size=3))
    value = st.tuples(st.just("config"), st.integers(0, 10 ** 6),
                      st.one_of(st.none(), st.booleans(), st.integers(-10 ** 9, 10 ** 12),
                                st.floats(allow_nan=True), st.text(max_size=8),
                                st.lists(st.integers(-3, 10 ** 6), max_size=4)))
    return st.lists(st.one_of(flip, cut, swap, shape, value), min_size=1, max_size=3)


def _config_paths(doc, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _config_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _config_paths(v, prefix + (i,))


def _mutate(raw: bytes, config_name: str, ops) -> bytes:
    for op, a, b in ops:
        if op == "flip" and raw:
            raw = bytearray(raw)
            raw[a % len(raw)] ^= 1 << b
            raw = bytes(raw)
        elif op == "truncate":
            raw = raw[: a % (len(raw) + 1)]
        else:
            try:
                members = _members(io.BytesIO(raw))
            except Exception:  # noqa: BLE001 - already not a readable zip: edits no longer apply
                continue
            names = sorted(members)
            if op == "swap":
                x, y = names[a % len(names)], names[b % len(names)]
                members[x], members[y] = members[y], members[x]
            elif op == "shape":
                name = names[a % len(names)]
                members[name] = _npy_header(tuple(b), np.float32) + members[name][128:]
            elif op == "config" and config_name + ".npy" in members:
                try:
                    doc = _json_member(members, config_name)
                except Exception:  # noqa: BLE001 - a flip before made it unreadable
                    continue
                paths = list(_config_paths(doc))[1:]
                if not paths:
                    continue
                path = paths[a % len(paths)]
                node = doc
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = b
                members = _with_json(members, config_name, doc)
            buf = io.BytesIO()
            _write(buf, members)
            raw = buf.getvalue()
    return raw


@FILE_SETTINGS
@given(ops=_mutations())
def test_load_model_on_mutated_files_gives_value_error_or_a_working_model(model_file, tmp_path, ops):
    bad = tmp_path / "mutated_model.npz"
    bad.write_bytes(_mutate(model_file.read_bytes(), "__config__", ops))
    try:
        model = load_model(bad)
    except ValueError as exc:
        assert "mutated_model.npz" in str(exc)
        return
    features = model.layers[0].input_size
    out = model.predict(np.ones((2, 5, features), model.dtype))
    assert out.shape[0] == 2


@FILE_SETTINGS
@given(ops=_mutations())
def test_forecaster_load_on_mutated_files_gives_value_error_or_a_working_forecaster(
        forecaster_file, tmp_path, ops):
    bad = tmp_path / "mutated_forecaster.npz"
    bad.write_bytes(_mutate(forecaster_file.read_bytes(), "meta", ops))
    try:
        forecaster = fg.GRUForecaster.load(bad)
    except ValueError as exc:
        assert "mutated_forecaster.npz" in str(exc)
        return
    assert len(forecaster.predict(1)) == 1


def test_a_dropout_noise_shape_from_a_file_is_checked_before_any_mask_is_drawn(tmp_path):
    model = fg.Sequential([fg.GRU(4, seed=1), fg.Dropout(0.5, noise_shape=(None, 1)),
                           fg.Dense(1, seed=2)])
    model.compile(optimizer="adam", loss="mse")
    model.build((None, 5, 2))
    good = tmp_path / "dropout.npz"
    model.save(good)
    members = _members(good)
    config = _json_member(members, "__config__")

    def with_noise_shape(shape, name):
        doc = json.loads(json.dumps(config))
        doc["model"]["layers"][1]["config"]["noise_shape"] = shape
        path = tmp_path / name
        _write(path, _with_json(members, "__config__", doc))
        return path

    # a feature axis that cannot be the input's: refused when the file is read
    bad = with_noise_shape([20000, 20000], "features.npz")
    assert _peak_bytes(lambda: _refused(load_model, bad)) < REFUSAL_BYTES
    # a batch axis that is not the batch's: refused by fit before a 20000-row mask is drawn
    loaded = load_model(with_noise_shape([20000, 1], "batch.npz"))
    X, y = np.zeros((8, 5, 2), np.float32), np.zeros((8, 1), np.float32)

    def fit():
        with pytest.raises(ValueError, match="noise_shape"):
            loaded.fit(X, y, epochs=1, verbose=0)

    assert _peak_bytes(fit) < REFUSAL_BYTES
    for shape in ([0, None], ["a", 1], [True, 1], []):
        _refused(load_model, with_noise_shape(shape, "entries.npz"))
