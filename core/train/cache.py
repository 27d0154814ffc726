"""What a dataset version keeps between runs, on disk beside it: images decoded and resized once into a uint8
store (built in parallel across the cores), and a backbone's features of every row. Both are made once per
version and setting, written to a temporary file and renamed into place, and read back by later runs in
seconds; so are the scikit-learn fits on those features (a frozen run's head, the baseline, the label check),
keyed by what they read and the code that computes them. Large stores are read row by row (the pages stay in
the OS cache, not in the process); small ones are held in memory, where that is faster. The choice is stated in
the progress messages."""
from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.images import BadImage

Progress = Callable[[float, str], None]
IN_MEMORY_BYTES = int(os.environ.get("FTS_IN_MEMORY_MB", "1024")) * 2**20  # stores up to this size are held in RAM


def _meta_path(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".json")


def ready(path: Path, expect: dict[str, Any]) -> bool:
    meta = _meta_path(path)
    if not (path.is_file() and meta.is_file()):
        return False
    try:
        return {k: v for k, v in json.loads(meta.read_text()).items() if k in expect} == expect
    except (OSError, json.JSONDecodeError):
        return False


def _finish(tmp: Path, path: Path, meta: dict[str, Any]) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _meta_path(path).write_text(json.dumps({**meta, "made": time.time()}))


# --------------------------------------------------------------------------- images
def _decode_chunk(args) -> int:
    """In a worker process: decode rows [start, stop) into the store (a row that cannot be read stays black)."""
    tmp, paths, start, prep, n, size = args
    store = np.memmap(tmp, dtype=np.uint8, mode="r+", shape=(n, 3, size, size))
    for i, p in enumerate(paths):
        try:
            store[start + i] = prep.load(p).numpy()
        except BadImage:
            store[start + i] = 0
    store.flush()
    return len(paths)


def build_pixels(paths: list[str], prep, path: Path, progress: Progress | None = None,
                 workers: int | None = None, chunk: int = 256) -> None:
    """Decode every image once into a uint8 store [N, 3, S, S], in parallel across the cores."""
    n, size = len(paths), prep.size
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(max(n, 1), 3, size, size)).flush()
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    jobs = [(tmp, paths[s:s + chunk], s, prep, max(n, 1), size) for s in range(0, n, chunk)]
    done = 0
    try:
        if workers == 1 or len(jobs) <= 1:
            results = map(_decode_chunk, jobs)
        else:
            import multiprocessing as mp

            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
            results = pool.map(_decode_chunk, jobs)
        for k in results:
            done += k
            if progress:
                progress(done / max(n, 1), f"Decoding images {done:,}/{n:,} ({workers} processes)")
        if workers > 1 and len(jobs) > 1:
            pool.shutdown()
        _finish(tmp, path, {"rows": n, "size": size})
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class PixelStore:
    """Rows of a store, read on demand: in memory when small, else from the file by position (so the pages
    live in the OS cache, shared by the loader's worker processes, not in each process)."""

    def __init__(self, path: Path, n: int, size: int, in_memory: bool | None = None):
        self.path, self.n, self.size = path, n, size
        self.row_bytes = 3 * size * size
        self.in_memory = (n * self.row_bytes <= IN_MEMORY_BYTES) if in_memory is None else in_memory
        self._all = np.fromfile(path, dtype=np.uint8, count=n * self.row_bytes).reshape(n, 3, size, size) \
            if self.in_memory else None
        self._fd: int | None = None
        self._pid: int | None = None

    def describe(self) -> str:
        mb = self.n * self.row_bytes / 2**20
        where = "held in memory" if self.in_memory else "read from disk as needed"
        return f"{self.n:,} images at {self.size} px ({mb:,.0f} MB), {where}"

    def __len__(self) -> int:
        return self.n

    def rows(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if self._all is not None:
            return self._all[idx]
        if self._fd is None or self._pid != os.getpid():  # a loader worker opens its own
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        out = np.empty((len(idx), 3, self.size, self.size), dtype=np.uint8)
        flat = out.reshape(len(idx), -1)
        for j, i in enumerate(idx):
            flat[j] = np.frombuffer(os.pread(self._fd, self.row_bytes, int(i) * self.row_bytes), dtype=np.uint8)
        return out

    def __getstate__(self):  # sent to loader workers: the file, not an open descriptor
        state = dict(self.__dict__)
        state["_fd"], state["_pid"] = None, None
        return state


def pixels(paths: list[str], prep, path: Path | None, progress: Progress | None = None) -> PixelStore:
    """The store for these images at this size: reused when an earlier run made it, else built now."""
    import tempfile

    if path is None:  # rows from two datasets (your own test file): a store for this run only
        path = Path(tempfile.mkdtemp(prefix="fts-pixels-")) / "pixels.u8"
    expect = {"rows": len(paths), "size": prep.size}
    if ready(path, expect):
        store = PixelStore(path, len(paths), prep.size)
        if progress:
            progress(1.0, f"Reusing the decoded images from an earlier run: {store.describe()}")
        return store
    build_pixels(paths, prep, path, progress)
    store = PixelStore(path, len(paths), prep.size)
    if progress:
        progress(1.0, f"Images ready: {store.describe()}")
    return store


# --------------------------------------------------------------------------- features
def feature_path(ds_dir: Path, backbone: str, variant: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in backbone)
    return ds_dir / "cache" / f"features-{safe}-{variant}.npy"


def load_features(path: Path, n: int, dim: int) -> np.ndarray | None:
    if not ready(path, {"rows": n, "dim": dim}):
        return None
    return np.load(path, mmap_mode="r")


def save_features(path: Path, feats: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, feats)
        _finish(tmp, path, {"rows": int(feats.shape[0]), "dim": int(feats.shape[1])})
    except OSError:
        tmp.unlink(missing_ok=True)  # the cache is only a speed-up


# --------------------------------------------------------------------------- fits on cached features
def content_key(*parts: Any) -> str:
    """A key for what a computation reads: arrays by their bytes (with shape and dtype), anything else by repr."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(memoryview(a.reshape(-1)).cast("B"))
        else:
            h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def code_key(*functions: Callable) -> str:
    """The source of the functions that compute a result (and the library versions): a result kept by older code
    is not read back by newer code that would compute something else."""
    import inspect

    import sklearn

    def source(f: Callable) -> str | bytes:
        f = getattr(f, "__func__", f)
        try:
            return inspect.getsource(f)
        except (OSError, TypeError):  # installed without sources: the compiled code stands for them
            import marshal

            return marshal.dumps(f.__code__)

    return content_key(np.__version__, sklearn.__version__, *(source(f) for f in functions))


def remembered(folder: Path, name: str, key: str, compute: Callable[[], dict[str, np.ndarray]]
               ) -> tuple[dict[str, np.ndarray], bool]:
    """compute()'s arrays, kept as folder/name-key.npz and read back (True) by a later call with the same key."""
    path = folder / f"{name}-{key}.npz"
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}, True
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass
    out = compute()
    tmp = folder / f".{name}-{key}.{os.getpid()}.tmp.npz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **out)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # only a speed-up
    return out, False
