"""A cheap fingerprint of the dataset source, so a sensor can notice it changed without reading it all."""

from __future__ import annotations

import hashlib
from pathlib import Path


def source_fingerprint(source: str) -> str:
    """Names, sizes and modification times below a folder, or of one file; URLs are taken as unchanging."""
    if source.startswith(("http://", "https://")):
        return "url:" + source
    path = Path(source).expanduser()
    digest = hashlib.sha256(str(path).encode())
    if path.is_dir():
        entries = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file():
        entries = [path]
    else:
        return "missing:" + source
    for entry in entries:
        st = entry.stat()
        digest.update(f"{entry.relative_to(path.parent)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
