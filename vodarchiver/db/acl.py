"""Directory search permission for the embedded server's user, through POSIX ACLs.

Run as root, the embedded PostgreSQL runs as an unprivileged user (it refuses root), which must
be able to pass through every directory above its binaries and its data. A checkout in a private
directory such as /root (mode 0700) would block it. Rather than opening such a directory to every
user (chmod o+x), we add one ACL entry granting search (x) to that one user, the least privilege
that works. ACLs are read and written as the kernel's `system.posix_acl_access` attribute, so no
external tool (setfacl) is needed.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

_XATTR = "system.posix_acl_access"
_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
_X = 1
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")

Acl = dict[tuple[int, int], int]  # (tag, id) -> permission bits rwx


def parse_acl(blob: bytes) -> Acl:
    """Decode the kernel's ACL attribute."""
    (version,) = _HEADER.unpack_from(blob)
    if version != _VERSION:
        raise ValueError(f"unknown POSIX ACL version {version}")
    acl: Acl = {}
    for offset in range(_HEADER.size, len(blob), _ENTRY.size):
        tag, perm, ident = _ENTRY.unpack_from(blob, offset)
        acl[(tag, ident)] = perm
    return acl


def encode_acl(acl: Acl) -> bytes:
    """Encode an ACL, entries in the order the kernel requires (by tag, then id)."""
    body = b"".join(_ENTRY.pack(tag, perm, ident) for (tag, ident), perm in sorted(acl.items()))
    return _HEADER.pack(_VERSION) + body


def acl_from_mode(mode: int) -> Acl:
    """The minimal ACL equivalent to plain permission bits."""
    return {
        (_USER_OBJ, _UNDEFINED_ID): (mode >> 6) & 7,
        (_GROUP_OBJ, _UNDEFINED_ID): (mode >> 3) & 7,
        (_OTHER, _UNDEFINED_ID): mode & 7,
    }


def with_search_for(acl: Acl, uid: int) -> Acl:
    """`acl` plus search permission for `uid`, with the mask widened so it takes effect."""
    result = dict(acl)
    result[(_USER, uid)] = result.get((_USER, uid), 0) | _X
    if (_MASK, _UNDEFINED_ID) in result:
        result[(_MASK, _UNDEFINED_ID)] |= _X
    else:
        group_class = [p for (tag, _), p in result.items() if tag in (_USER, _GROUP_OBJ, _GROUP)]
        result[(_MASK, _UNDEFINED_ID)] = _or(group_class)
    return result


def _or(perms: list[int]) -> int:
    out = 0
    for perm in perms:
        out |= perm
    return out


def read_acl(path: Path) -> Acl | None:
    """The directory's ACL, or None when it has only plain permission bits."""
    try:
        return parse_acl(os.getxattr(path, _XATTR))
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
            return None
        raise


def can_search(path: Path, uid: int, gids: set[int]) -> bool:
    """Whether `uid` (with groups `gids`) may pass through directory `path`."""
    st = path.stat()
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    acl = read_acl(path)
    if acl is not None:
        mask = acl.get((_MASK, _UNDEFINED_ID), 7)
        if (_USER, uid) in acl:
            return bool(acl[(_USER, uid)] & mask & _X)
        groups = [acl[(_GROUP_OBJ, _UNDEFINED_ID)]] if st.st_gid in gids else []
        groups += [p for (tag, ident), p in acl.items() if tag == _GROUP and ident in gids]
        if groups:
            return any(p & mask & _X for p in groups)
        return bool(acl.get((_OTHER, _UNDEFINED_ID), 0) & _X)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def blocked_directories(path: Path, uid: int, gids: set[int]) -> list[Path]:
    """Existing directories from / down to `path` that `uid` may not pass through."""
    blocked = []
    for directory in [*reversed(path.parents), path]:
        if not directory.exists():
            break
        if not can_search(directory, uid, gids):
            blocked.append(directory)
    return blocked


def grant_search(path: Path, uid: int) -> None:
    """Let `uid` pass through directory `path` by adding one ACL entry; OSError if unsupported."""
    acl = read_acl(path)
    if acl is None:
        acl = acl_from_mode(path.stat().st_mode)
    os.setxattr(path, _XATTR, encode_acl(with_search_for(acl, uid)))
