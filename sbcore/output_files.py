"""Writing result files so that a failed write leaves nothing half-written and says why in one sentence.

Every file goes to a temporary name beside its target and is renamed over it only once complete, with the mode a
new file gets (umask applied); a full disk, a name the file system refuses or a vanished folder, reported by the
OS or by torch's and safetensors' writers, raises ``OutputError`` and removes the temporary file. A target
that exists and is not a regular file (``/dev/null``, ``/dev/full``) is written in place, as there is nothing to
rename over.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sbcore.errors import SBCoreError


class OutputError(SBCoreError, OSError):
    """A result file could not be written; the message names the file and the reason."""


_UMASK = os.umask(0)  # read once at import (setting it is process-wide): new files get 0o666 & ~umask
os.umask(_UMASK)
WRITE_ERRORS: tuple[type[Exception], ...] = (OSError, RuntimeError)  # torch.save reports a full disk as RuntimeError
try:
    from safetensors import SafetensorError

    WRITE_ERRORS += (SafetensorError,)
except ImportError:  # safetensors is a dependency; this keeps the module importable on its own
    pass


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}…{text[-40:]}"


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to (by any library); on success it replaces ``path``."""
    target = Path(path)
    if target.exists() and not target.is_file():
        try:
            yield target
        except WRITE_ERRORS as error:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0][:200] or type(error).__name__
            raise OutputError(f"cannot write {_shown(target)}: {reason}.") from None
        return
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=target.suffix)
        os.close(handle)
    except OSError as error:
        raise OutputError(f"cannot write {_shown(target)}: {error.strerror or error}.") from None
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, target)
    except WRITE_ERRORS as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0][:200] or type(error).__name__
        raise OutputError(f"cannot write {_shown(target)}: {reason}.") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` completely or not at all; returns the path."""
    with replacing(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
    return Path(path)
