"""Blobs (uploaded clouds, result diagrams, upload parts) under a storage root: a local folder or any
pyarrow filesystem URI (``s3://bucket/prefix``), so that several nodes share them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pyarrow.fs as pafs

from tda_ray.io.blocks import resolve_filesystem

__all__ = ["BlobStore", "BlobWriter"]


class BlobWriter:
    """One blob written piece by piece (a streamed upload); readers see it only after :meth:`commit`."""

    def __init__(self, fs: pafs.FileSystem, path: str, local: bool) -> None:
        self._fs, self._path = fs, path
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        # Local files are written under a temporary name and renamed; object stores publish a PUT atomically.
        self._tmp = f"{path}.tmp-{uuid.uuid4().hex}" if local else path
        self._out = fs.open_output_stream(self._tmp)
        self.size = 0
        self.head = b""  # the first bytes, for format sniffing

    def write(self, data: bytes) -> None:
        if len(self.head) < 16:
            self.head += data[: 16 - len(self.head)]
        self._out.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self._out.close()
        if self._tmp != self._path:
            self._fs.move(self._tmp, self._path)

    def abort(self) -> None:
        with suppress(Exception):
            self._out.close()
        with suppress(Exception):
            self._fs.delete_file(self._tmp)


class BlobStore:
    """Bytes under a storage root, through pyarrow's filesystem layer."""

    def __init__(self, root: str) -> None:
        fs, base = resolve_filesystem(root)
        self.fs: pafs.FileSystem = fs
        self.base = base.rstrip("/")
        self._local = fs.type_name == "local"
        self._scheme = root.split("://", 1)[0] if "://" in root and not self._local else None
        self.fs.create_dir(self.base, recursive=True)

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def uri(self, key: str) -> str:
        """Where other processes and nodes read the blob: a local path or a ``scheme://`` URI."""
        return self._path(key) if self._scheme is None else f"{self._scheme}://{self._path(key)}"

    def writer(self, key: str) -> BlobWriter:
        return BlobWriter(self.fs, self._path(key), self._local)

    def put(self, key: str, data: bytes) -> None:
        w = self.writer(key)
        try:
            w.write(data)
            w.commit()
        except BaseException:
            w.abort()
            raise

    def get(self, key: str) -> bytes:
        with self.fs.open_input_stream(self._path(key)) as f:
            return bytes(f.readall())

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of the blobs under ``prefix`` (a folder key), sorted by key."""
        sel = pafs.FileSelector(self._path(prefix), allow_not_found=True)
        out = [
            (info.path[len(self.base) + 1 :], int(info.size or 0))
            for info in self.fs.get_file_info(sel)
            if info.type == pafs.FileType.File
        ]
        return sorted(out)

    def open(self, key: str) -> Any:
        """A seekable binary file over the blob (random access: headers, footers, ranged reads)."""
        return self.fs.open_input_file(self._path(key))

    def size(self, key: str) -> int:
        return int(self.fs.get_file_info(self._path(key)).size or 0)

    def chunks(self, key: str, size: int = 4 * 1024 * 1024) -> Iterator[bytes]:
        with self.fs.open_input_stream(self._path(key)) as f:
            while chunk := f.read(size):
                yield bytes(chunk)

    def delete_dir(self, prefix: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.delete_dir(self._path(prefix))

    def rename(self, key: str, new_key: str) -> None:
        self.fs.move(self._path(key), self._path(new_key))

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.delete_file(self._path(key))

    def ping(self) -> None:
        self.fs.get_file_info(self.base)
