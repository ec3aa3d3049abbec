"""Reading and writing the files jgen makes itself (configs, metrics, grids, reports) at local paths or
URLs (`gs://bucket/run`: a pod's hosts share one workdir and a preempted VM loses nothing).

Local paths use the standard library; URLs go through `tf.io.gfile` (imported only then), which
knows gs:// and, for tests, ram://. Checkpoints take the workdir string unchanged to Orbax, which
opens URLs through `etils.epath`. Nothing here calls os.path.abspath on a URL.
"""

import os
import socket

from jgen.errors import JgenError


def is_url(path) -> bool:
    return "://" in str(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def check_output(path: str, kind: str = "file") -> None:
    """Raises a one-line JgenError, before any work, when `path` (a local output `kind`: 'file' or 'directory')
    cannot be written: it exists as the other kind, or its nearest existing ancestor is a file or not
    writable. URLs are left to the writer."""
    if is_url(path):
        return
    path = os.path.abspath(os.path.expanduser(path))
    if kind == "file" and os.path.isdir(path):
        raise JgenError(f"{path} is a directory; give a file name to write")
    if kind == "directory" and os.path.exists(path) and not os.path.isdir(path):
        raise JgenError(f"{path} is a file, not a directory")
    parent = path if kind == "directory" and os.path.isdir(path) else os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise JgenError(f"cannot write {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise JgenError(f"cannot write {path}: {parent} is not writable")


def check_workdir(workdir: str) -> None:
    """Raises a one-line JgenError for a local workdir that is a file or cannot be created, or a workdir URL
    whose scheme Orbax (etils.epath) or TensorFlow's gfile does not serve. Nothing is read or written: the
    check must not wait on a network."""
    if not is_url(workdir):
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise JgenError(f"--workdir {workdir} is a file, not a run directory")
        return
    from etils import epath

    scheme = workdir.split("://")[0]
    try:
        epath.Path(workdir)  # KeyError for a scheme epath does not know
        served = scheme in _gfile().get_registered_schemes()
    except KeyError:
        served = False
    if not served:
        raise JgenError(f"--workdir {workdir}: no filesystem here writes {scheme}:// URLs (jgen takes local "
                        "paths and gs:// buckets)")


def exists(path) -> bool:
    path = str(path)
    return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def read_text(path) -> str:
    path = str(path)
    if is_url(path):
        with _gfile().GFile(path, "r") as f:
            return f.read()
    with open(path) as f:
        return f.read()


def write_bytes(path, data: bytes) -> None:
    """Writes `path` whole: locally through a temporary file and a rename, so a reader never sees half
    a file (the temporary name is this process's own: hosts sharing a filesystem may write one path
    at once); at a URL in one upload (an object store replaces an object whole)."""
    path = str(path)
    if is_url(path):
        _gfile().makedirs(os.path.dirname(path))
        with _gfile().GFile(path, "wb") as f:
            f.write(data)
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode())


def open_append(path):
    """A text file open for appending (gfile appends on gs:// by rewriting the object on each flush)."""
    path = str(path)
    if is_url(path):
        _gfile().makedirs(os.path.dirname(path))
        return _gfile().GFile(path, "a")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "a")


def move(src: str, dst: str) -> None:
    """Moves a file or directory tree (a damaged checkpoint set aside)."""
    src, dst = str(src), str(dst)
    if is_url(src):  # object stores have no directories to rename: copy each object, then delete
        gfile = _gfile()
        for root, _, names in gfile.walk(src):
            target = dst + root[len(src):]
            gfile.makedirs(target)
            for name in names:
                gfile.copy(f"{root}/{name}", f"{target}/{name}", overwrite=True)
        gfile.rmtree(src)
        return
    import shutil

    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.move(src, dst)
