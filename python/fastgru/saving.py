"""Model files: ``Sequential.save`` / ``load_model``, and the checked ``.npz`` reader and
atomic writer that ``GRUForecaster.save`` / ``load`` share.

A file is a NumPy ``.npz`` archive (a zip of ``.npy`` members) holding a JSON config member and
the weights in Keras order (``weight_0``, ``weight_1``, ...); no pickle is ever read or written.

Reading treats every file as untrusted and refuses a bad one cheaply, with a ``ValueError``
naming the file, before anything large is allocated or computed:

* only a regular file is opened (a FIFO, directory or device is refused without blocking);
* the zip directory is read first: the members may not declare more bytes than the file holds,
  so nothing read can inflate past the file's own size (an archive fastgru writes is stored,
  not compressed, so a genuine file always passes);
* each ``.npy`` header is read and checked (dtype, shape, byte count) before its data, and the
  weights' shapes are checked against what the config implies before any layer is built;
* layers are built with zeros initialisers (the file's weights replace them at once).

Writing goes through a temporary file in the destination's directory and ``os.replace``, so a
crash never leaves a half-written file. A destination that exists keeps its permission bits;
a new one gets the usual ``0o666 & ~umask``. A symlink at the destination is followed: the
file it points to is replaced and the link is kept. Errors name the destination.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
import tokenize
import zipfile
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from .layers import LAYER_CLASSES, Layer
from .model import Sequential

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "check_native_path", "save_npz_atomically", "NpzReader", "open_npz",
           "open_regular_file", "read_weights"]

MODEL_FORMAT = "fastgru.Sequential"
MODEL_FORMAT_VERSION = 1
WEIGHTS_FORMAT = "fastgru.weights/1"
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

# Errors that mean "this file is not what it claims to be" while reading or interpreting it.
_DAMAGE = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
           RecursionError, EOFError, UnicodeDecodeError, zipfile.BadZipFile,
           zipfile.LargeZipFile, NotImplementedError)


# ------------------------------------------------------------------------------------ saving
def save_model(model: Sequential, path) -> None:
    """Write ``model`` (config, weights, compile settings) to one ``.npz`` file at ``path``.

    The optimizer's state (Adam moments) is not saved. See the module docstring for how the
    file is written (atomically; permissions and symlinks).
    """
    path = check_native_path(path, "save", ".npz")
    model.require_built("save")
    config = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "model": model.get_config(),
        "compile": None,
    }
    if model.optimizer is not None and model.loss is not None:
        config["compile"] = {
            "optimizer": optimizers_mod.serialize(model.optimizer),
            "loss": losses_mod.serialize(model.loss),
            "metrics": metrics_mod.serialize(model.compiled_metrics),
        }
    arrays = {"__config__": np.array(json.dumps(config))}
    for i, w in enumerate(model.get_weights()):
        arrays[f"weight_{i}"] = w
    save_npz_atomically(path, arrays)


def check_native_path(path, what: str, suffix: str) -> str:
    """Refuse Keras' file names: fastgru writes ``.npz``, never a different format under a
    ``.keras`` or ``.h5`` name (a Keras tool would fail on it)."""
    path = os.fspath(path)
    if str(path).lower().endswith(_KERAS_SUFFIXES):
        stem = path
        for ext in (".weights.h5",) + _KERAS_SUFFIXES:
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        raise ValueError(
            f"{what}({path!r}): fastgru writes its own .npz format, not Keras' .keras/.h5; use "
            f"a name such as {stem + suffix!r}. For a real Keras file of a GRU/Dense model, "
            "convert it: fastgru.to_keras(model).save(path)"
        )
    return path


def save_weights(model: Sequential, path) -> None:
    """The weights alone, in Keras order, to an ``.npz`` file (``Sequential.save_weights``)."""
    path = check_native_path(path, "save_weights", ".weights.npz")
    model.require_built("save_weights")
    arrays = {"__format__": np.array(WEIGHTS_FORMAT)}
    for i, w in enumerate(model.get_weights()):
        arrays[f"weight_{i}"] = w
    save_npz_atomically(path, arrays)


def load_weights(model: Sequential, path) -> None:
    """Weights written by ``save_weights`` (or a ``save`` file) into ``model``
    (``Sequential.load_weights``). A built model's shapes are checked against each member's
    header before it is read; an unbuilt one takes its shapes from the first kernel."""
    path = check_native_path(path, "load_weights", ".weights.npz")
    with open_npz(path, "fastgru weights file") as archive:
        if "weight_0" not in archive:
            raise ValueError("no weight entries")
        shape = model.input_shape if model.built else None
        weights = read_weights(archive, model.layers, shape)
    model.set_weights(weights)


def save_npz_atomically(path, arrays: Dict[str, np.ndarray]) -> None:
    """``np.savez`` to ``path`` (exactly that name) through a temporary file in the same
    directory and ``os.replace``: a crash never leaves a half-written file.

    An existing destination keeps its permission bits; a symlink is followed (its target is
    replaced, the link kept); a destination that is not a regular file is refused. An OSError
    names ``path``, never the temporary file.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)  # through a symlink: the link stays, its file is replaced
    directory = os.path.dirname(target)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise _naming(exc, path) from exc
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise ValueError(f"cannot save to {path!r}: it exists and is not a regular file")
    try:
        fd, tmp = _create_temporary(directory, os.path.basename(target))
    except OSError as exc:
        if not os.path.isdir(directory):
            raise FileNotFoundError(exc.errno, f"no such directory {directory!r}", path) from exc
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            if existing is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), stat.S_IMODE(existing.st_mode))
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    _sync_directory(directory)


def _naming(exc: OSError, path: str) -> OSError:
    """The same error (same OSError subclass) about ``path`` rather than a temporary file."""
    if exc.errno is None:
        return OSError(f"cannot save to {path!r}: {exc}")
    return OSError(exc.errno, exc.strerror, path)


def _create_temporary(directory: str, base: str):
    """A new file next to the destination, opened for writing, with the permissions an
    ordinary new file gets (0o666 less the umask: ``tempfile.mkstemp`` would force 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file in {directory!r}")


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); best effort elsewhere."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------ reading
class NpzReader:
    """The members of a checked ``.npz`` archive, read one by one with their headers checked
    first. Make one with ``open_npz``; every refusal is a ValueError (naming the file, once
    ``open_npz`` has added it)."""

    def __init__(self, zf: zipfile.ZipFile, file_size: int):
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ValueError("the archive repeats a member name")
        declared = sum(i.file_size for i in infos)
        if declared > file_size or sum(i.compress_size for i in infos) > file_size:
            raise ValueError(f"its members declare {declared} bytes but the file has "
                             f"{file_size} (compressed archives are not fastgru files)")
        for i in infos:
            if not i.filename.endswith(".npy"):
                raise ValueError(f"member {i.filename!r} is not a .npy array")
            if i.flag_bits & 0x1:
                raise ValueError(f"member {i.filename!r} is encrypted")
        self._zip = zf
        self._infos = {i.filename[:-4]: i for i in infos}

    @property
    def files(self) -> List[str]:
        """The member names without ``.npy`` (as ``np.load``'s ``NpzFile.files``)."""
        return list(self._infos)

    def __contains__(self, name: str) -> bool:
        return name in self._infos

    def __getitem__(self, name: str) -> np.ndarray:
        """``read(name)``: a numeric array, its size checked against the member's."""
        return self.read(name)

    def shape(self, name: str) -> tuple:
        """The shape the member's header declares (no data is read)."""
        info = self._infos.get(name)
        if info is None:
            raise ValueError(f"no member {name!r}")
        with self._zip.open(info) as f:
            return tuple(_npy_header(f, name)[0])

    def read(self, name: str, shape: Optional[Sequence[int]] = None, kinds: str = "fiu") -> np.ndarray:
        """The array ``name``; its header must declare a dtype of one of ``kinds`` and, when
        given, ``shape`` - checked before a byte of data is read."""
        info = self._infos.get(name)
        if info is None:
            raise ValueError(f"no member {name!r}")
        with self._zip.open(info) as f:
            got_shape, fortran, dtype = _npy_header(f, name)
            if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None:
                raise ValueError(f"member {name!r} has dtype {dtype}; expected kind {kinds!r}")
            if shape is not None and tuple(got_shape) != tuple(shape):
                raise ValueError(f"member {name!r} has shape {tuple(got_shape)}; the config "
                                 f"implies {tuple(shape)}")
            nbytes = math.prod(got_shape) * dtype.itemsize
            if nbytes + f.tell() != info.file_size:
                raise ValueError(f"member {name!r} declares shape {tuple(got_shape)} of {dtype} "
                                 f"({nbytes} bytes) but holds {info.file_size - f.tell()}")
            buffer = bytearray(nbytes)
            if f.readinto(buffer) != nbytes:
                raise ValueError(f"member {name!r} is truncated")
            f.read(1)  # reach the end: the zip module checks the member's CRC there
        array = np.frombuffer(buffer, dtype=dtype)
        return array.reshape(got_shape, order="F" if fortran else "C")

    def read_json(self, name: str):
        """The JSON document stored as the 0-d string array ``name``."""
        return json.loads(str(self.read(name, shape=(), kinds="U")[()]))


def _npy_header(f, name: str):
    """(shape, fortran_order, dtype) from the ``.npy`` header at the start of ``f``."""
    version = np.lib.format.read_magic(f)
    try:
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(f)
    except (SyntaxError, tokenize.TokenError) as exc:  # numpy parses it as a Python literal
        raise ValueError(f"member {name!r} has a damaged .npy header ({exc})") from None
    raise ValueError(f"member {name!r}: unknown .npy version {version}")


@contextlib.contextmanager
def open_npz(path, what: str) -> Iterator[NpzReader]:
    """The checked ``.npz`` archive at ``path``. Inside the ``with`` block, any sign of a
    damaged, truncated or foreign file (from the reader or the caller's interpretation of what
    it read: a KeyError, TypeError, ...) becomes a ValueError naming the file and ``what`` it
    should be. A missing file raises FileNotFoundError."""
    path = os.fspath(path)
    fd = open_regular_file(path)
    try:
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            try:
                with zipfile.ZipFile(f) as zf:
                    yield NpzReader(zf, size)
            except (*_DAMAGE, OSError) as exc:  # OSError: e.g. a seek to a damaged offset
                raise ValueError(f"{path!r} is not a {what}: the file is damaged, truncated or "
                                 f"foreign ({type(exc).__name__}: {exc})") from exc
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise


def open_regular_file(path: str) -> int:
    """A read descriptor for ``path`` if it is a regular file. Opened non-blocking and checked
    with fstat, so a FIFO is refused instead of waiting for a writer."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not hasattr(os, "O_NONBLOCK") and os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a regular file")
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such file", path) from None
    except IsADirectoryError:
        raise ValueError(f"{path!r} is not a regular file (a directory)") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{path!r} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_weights(archive: NpzReader, layers: Sequence[Layer], input_shape=None) -> List[np.ndarray]:
    """``weight_0``, ``weight_1``, ... for unbuilt ``layers`` fed ``input_shape``: exactly as
    many as the layers have, each header checked against the shape they imply before it is
    read (so a small file cannot make a large model). Without ``input_shape`` the feature count
    is the first kernel's first axis, as its header declares it."""
    if input_shape is None:
        kernel = archive.shape("weight_0") if "weight_0" in archive else ()
        if len(kernel) != 2:
            raise ValueError(f"the first kernel has shape {kernel}; expected (features, units)")
        input_shape = (None, None, kernel[0])
    input_shape = tuple(input_shape)
    if len(input_shape) not in (2, 3) or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1)
            for d in input_shape) or input_shape[-1] is None:
        raise ValueError(f"bad input shape {input_shape}")
    expected = []
    shape = input_shape
    for layer in layers:
        expected += layer.weight_shapes(input_size=shape[-1])
        shape = layer.compute_output_shape(shape)
    found = sum(1 for n in archive.files if n.startswith("weight_"))
    if found != len(expected):
        raise ValueError(f"it has {found} weight arrays; the config implies {len(expected)}")
    return [archive.read(f"weight_{i}", shape=s) for i, s in enumerate(expected)]


def _layer_from_config(entry):
    """A layer from its saved config, made with zeros initialisers (the file's weights replace
    them, so building must not spend time on random or orthogonal, O(units^3), ones), and the
    saved initialisers to put back once it is built."""
    cls = LAYER_CLASSES[entry["class_name"]]
    config = dict(entry["config"])
    cls.from_config(config)  # every saved setting valid, the initialisers too
    initializers = {k: v for k, v in config.items() if k.endswith("_initializer")}
    return cls.from_config({**config, **{k: "zeros" for k in initializers}}), initializers


def load_model(path) -> Sequential:
    """Load a model written by ``Sequential.save``; compiled again if it was compiled.

    Raises ``ValueError`` naming the file when it is damaged, truncated, not a fastgru model or
    not a regular file (``FileNotFoundError`` when it does not exist). Checks run before anything
    large is allocated (see the module docstring).
    """
    with open_npz(path, "saved fastgru model") as archive:
        if "__config__" not in archive:
            raise ValueError("no fastgru config entry")
        config = archive.read_json("__config__")
        if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
            raise ValueError("the config is not a fastgru Sequential config")
        if config.get("version") != MODEL_FORMAT_VERSION:
            raise ValueError(f"unsupported format version {config.get('version')!r}")
        model_cfg = config["model"]
        made = [_layer_from_config(e) for e in model_cfg["layers"]]
        model = Sequential([layer for layer, _ in made], name=str(model_cfg.get("name", "sequential")))
        shape = tuple(model_cfg["input_shape"])
        weights = read_weights(archive, model.layers, shape)
        model.build(shape)
        model.set_weights(weights)
        for layer, initializers in made:
            for key, value in initializers.items():
                setattr(layer, key, value)
        compile_cfg = config.get("compile")
        if compile_cfg:
            model.compile(
                optimizer=optimizers_mod.deserialize(compile_cfg["optimizer"]),
                loss=losses_mod.deserialize(compile_cfg["loss"]),
                metrics=compile_cfg.get("metrics") or None,
            )
    return model
