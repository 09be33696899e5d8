"""Unpack a release archive without letting it write outside the target directory.

Every member is checked before anything is written: absolute paths, ``..``
components, device files and FIFOs, links whose target is absolute or contains
``..``, hard links to anything but an earlier regular file, and members under a
directory that is a symlink are all refused. The archive is unpacked into a
temporary directory inside the target (with Python's ``'data'`` filter as a second
guard), then moved into place.
"""
import os
import shutil
import tarfile
import tempfile


# Python's own guard (3.9.17+, 3.10.12+, 3.11.4+) on top of our checks
_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class UnsafeArchiveError(ValueError):
    pass


def _parts(name: str):
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def check_members(tar: tarfile.TarFile, archive: str) -> None:
    regular, links = set(), set()
    for member in tar.getmembers():
        name = member.name
        problem = None
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            problem = "absolute path"
        elif ".." in _parts(name):
            problem = "'..' in the path"
        elif member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            problem = "device file or FIFO"
        elif not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            problem = "unsupported member type"
        elif member.issym():
            target = member.linkname
            if target.startswith("/") or ".." in _parts(target):
                problem = f"link to {target!r} points outside the archive"
        elif member.islnk() and "/".join(_parts(member.linkname)) not in regular:
            problem = f"hard link to {member.linkname!r}, not an earlier file of the archive"
        clean = "/".join(_parts(name))
        for i in range(1, len(_parts(name))):
            if "/".join(_parts(name)[:i]) in links:
                problem = "path goes through a symbolic link"
        if problem:
            raise UnsafeArchiveError(f"{archive}: refused member {name!r}: {problem}; nothing was extracted")
        if member.isfile():
            regular.add(clean)
        if member.issym():
            links.add(clean)


def check_readable(archive: str) -> None:
    """Read the archive to its end (a truncated or corrupt gzip stream fails here)."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if member.isfile():
                stream = tar.extractfile(member)
                while stream.read(1 << 20):
                    pass


def safe_extract(archive: str, target: str, flatten_single_top: bool = True) -> None:
    """Unpack ``archive`` into ``target``; a lone top-level folder is unwrapped (as PALM did for BERT)."""
    os.makedirs(target, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        check_members(tar, archive)
        staging = tempfile.mkdtemp(prefix=".extract-", dir=target)
        try:
            tar.extractall(staging, **_DATA_FILTER)
            root = staging
            entries = os.listdir(staging)
            if flatten_single_top and len(entries) == 1 and os.path.isdir(os.path.join(staging, entries[0])) \
                    and not os.path.islink(os.path.join(staging, entries[0])):
                root = os.path.join(staging, entries[0])
            real_target = os.path.realpath(target)
            for entry in os.listdir(root):
                source = os.path.join(root, entry)
                destination = os.path.join(target, entry)
                if os.path.lexists(destination):
                    if os.path.isdir(destination) and not os.path.islink(destination):
                        shutil.rmtree(destination)
                    else:
                        os.remove(destination)
                if os.path.dirname(os.path.realpath(destination)) != real_target:
                    raise UnsafeArchiveError(f"{archive}: {entry!r} would land outside {target}")
                os.replace(source, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
