"""Files that are never half-written: write a temporary file beside the target, fsync it,
rename it over the target (atomic on POSIX), then fsync the folder."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file for writing; on success it replaces `path` atomically, on an
    exception it is removed and `path` is left as it was."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    with contextlib.suppress(OSError):        # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write(path, data):
    """Write bytes or text to path atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def read_npz(path, what, required):
    """{key: array} of an .npz written by gomaml, every array read into memory. A missing
    file is FileNotFoundError; anything else that is not a readable .npz with the `required`
    keys (truncated, not a zip, Python objects inside) is one ValueError naming the file."""
    import zipfile

    import numpy as np
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = sorted(set(required) - set(f.files))
            if missing:
                raise ValueError(f"missing keys {missing}")
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except ValueError as exc:
        reason = ("it holds Python objects, which gomaml never writes"
                  if "allow_pickle" in str(exc) else str(exc))
        raise ValueError(f"{path}: not a {what} file ({reason})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a {what} file ({exc})") from None
