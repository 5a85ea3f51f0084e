"""Import a role file as module ``roles.<stem>``: once, or afresh after the file changed.

Rules kept here:
- A file already imported from the same path is reused, so a role's intent classes exist once.
- ``fresh=True`` executes the file again into a new module object (hot reload after an edit).
- A failed import leaves ``sys.modules`` as it was before.
- The source is compiled from the bytes read here, never from a cached ``.pyc``: two edits within
  one second with the same size would otherwise run stale bytecode.
"""

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def source_digest(source: bytes) -> str:
    """Return the sha256 of a role file's bytes."""
    return hashlib.sha256(source).hexdigest()


def file_digest(path: Path) -> str:
    """Return the sha256 of a file's bytes."""
    return source_digest(path.read_bytes())


def module_name(path: Path) -> str:
    """Return the module name a role file is imported under."""
    return f"roles.{path.stem}"


def import_role_module(
    path: Path, *, fresh: bool = False, source: bytes | None = None
) -> ModuleType:
    """Import ``path`` as ``roles.<stem>``, reusing a module already imported from that file."""
    name = module_name(path)
    existing = sys.modules.get(name)
    if not fresh and existing is not None and _same_file(getattr(existing, "__file__", None), path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        code = compile(path.read_bytes() if source is None else source, str(path), "exec")
        exec(code, module.__dict__)
    except BaseException:
        restore_module(name, existing)
        raise
    return module


def restore_module(name: str, module: ModuleType | None) -> None:
    """Put ``module`` back under ``name`` in ``sys.modules`` (or remove the name if None)."""
    if module is not None:
        sys.modules[name] = module
    else:
        sys.modules.pop(name, None)


def _same_file(module_file: str | None, path: Path) -> bool:
    if module_file is None:
        return False
    try:
        return Path(module_file).resolve() == path.resolve()
    except OSError:
        return False
