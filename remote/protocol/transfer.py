"""Files between the controller and the agent, through the agent itself.

The agent runs as root; the controller logs in as whoever the user is (root,
or a sudo user such as `admin` or `ec2-user`).  What the agent writes (a
pyperf JSON, the built module) is root's, mode 0600, and a cached module goes
into the agent's own root-owned directories: SFTP as the login user can read
or write none of it.  So files move inside the protocol instead: the
controller asks the agent (`file_read`, `file_write`) for one chunk at a
time, base64 in the JSON line, and the agent, who owns its directory, does
the I/O.  It works the same over SSH as root, over SSH through sudo, and over
the LAVA runner's pipes.

Confined: a path is the agent's directory or below it, once every symlink is
resolved; anything else is refused (kind "usage").  Sizes are checked: a
chunk at most CHUNK_BYTES, a file at most MAX_FILE_BYTES, and a write goes on
only at the end of what was written before (offset == the file's size).

Standard library only (shipped with the agent; Python 3.9).
"""
import base64
import os
import stat

try:  # on the target: shipped next to agent.py as the package `protocol`
    from protocol.errors import BenchError
except ImportError:  # in the source tree
    from remote.protocol.errors import BenchError

# 512 KiB of data per line: about 700 KB of base64, well within what the
# agent's line reader takes; a built module (about 0.5 MB stripped, a few MB
# with debug info) is a handful of round trips.
CHUNK_BYTES = 512 * 1024
# A pyperf JSON of the standard profile is well under a megabyte, a module
# with debug info under 20 MB: anything larger is not ours.
MAX_FILE_BYTES = 64 * 1024 * 1024


class TransferError(BenchError):
    kind = "usage"


def confined(workdir, path):
    """`path` (absolute, or relative to workdir) resolved, if it lies in
    workdir; else TransferError.  The last component is resolved too: a
    symlink inside pointing outside is refused."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise TransferError("bad path %r" % (path,))
    root = os.path.realpath(workdir)
    full = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([root, full]) != root or full == root:
        raise TransferError("refusing %r: not a file in the agent's directory %s" % (path, workdir))
    return full


def _check_offset(offset):
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_FILE_BYTES:
        raise TransferError("bad offset %r" % (offset,))


def read_chunk(workdir, path, offset=0, length=CHUNK_BYTES):
    """{data: base64 of up to `length` bytes from `offset`, size: the
    file's size}; an empty chunk at or past the end."""
    _check_offset(offset)
    if not isinstance(length, int) or isinstance(length, bool) or not 0 < length <= CHUNK_BYTES:
        raise TransferError("bad length %r (1 to %d bytes a chunk)" % (length, CHUNK_BYTES))
    full = confined(workdir, path)
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise TransferError("no file %r in the agent's directory" % path, kind="agent")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise TransferError("refusing %r: not a regular file" % path)
    with os.fdopen(fd, "rb") as f:
        if st.st_size > MAX_FILE_BYTES:
            raise TransferError("refusing %r: %d bytes, over the %d-byte limit"
                                % (path, st.st_size, MAX_FILE_BYTES))
        f.seek(offset)
        data = f.read(length)
    return {"data": base64.b64encode(data).decode("ascii"), "size": st.st_size, "offset": offset}


def write_chunk(workdir, path, data, offset=0):
    """Write base64 `data` at `offset` of the file `path` (relative to
    workdir): offset 0 creates the file (or truncates it), mode 0600;
    a later chunk must start where the file ends.  Returns {size}."""
    _check_offset(offset)
    if not isinstance(path, str) or os.path.isabs(path):
        raise TransferError("bad path %r: give it relative to the agent's directory" % (path,))
    full = confined(workdir, path)
    if not os.path.isdir(os.path.dirname(full)):
        raise TransferError("no directory for %r in the agent's directory" % path)
    try:
        raw = base64.b64decode(data.encode("ascii") if isinstance(data, str) else b"",
                               validate=True)
    except ValueError:
        raise TransferError("bad base64 data for %r" % path)
    if len(raw) > CHUNK_BYTES:
        raise TransferError("a chunk of %d bytes, over the %d-byte limit" % (len(raw), CHUNK_BYTES))
    if offset + len(raw) > MAX_FILE_BYTES:
        raise TransferError("%r would grow over the %d-byte limit" % (path, MAX_FILE_BYTES))
    flags = os.O_WRONLY | os.O_NOFOLLOW | (os.O_CREAT | os.O_TRUNC if offset == 0 else 0)
    try:
        if os.path.lexists(full) and not stat.S_ISREG(os.lstat(full).st_mode):
            raise TransferError("refusing %r: not a regular file" % path)
        fd = os.open(full, flags, 0o600)
    except FileNotFoundError:
        raise TransferError("chunk at offset %d of %r, which was never started" % (offset, path))
    with os.fdopen(fd, "wb") as f:
        st = os.fstat(f.fileno())
        if st.st_size != offset:
            raise TransferError("chunk at offset %d of %r, which has %d bytes"
                                % (offset, path, st.st_size))
        f.seek(offset)
        f.write(raw)
    return {"size": offset + len(raw)}
