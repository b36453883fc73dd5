"""Files between controller and agent, through the agent (remote/protocol/
transfer.py): confined to the agent's directory, sizes checked, chunked."""
import base64
import os

import pytest

from remote.protocol import transfer
from remote.protocol.transfer import TransferError, read_chunk, write_chunk


@pytest.fixture
def workdir(tmp_path):
    d = tmp_path / "ftrace-regs-bench.x"
    (d / "kmod").mkdir(parents=True)
    return str(d)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def read_all(workdir, path):
    out, offset = b"", 0
    while True:
        got = read_chunk(workdir, path, offset)
        data = base64.b64decode(got["data"])
        out += data
        offset += len(data)
        if offset >= got["size"]:
            return out


def write_all(workdir, path, data):
    offset = 0
    while True:
        chunk = data[offset:offset + transfer.CHUNK_BYTES]
        assert write_chunk(workdir, path, b64(chunk), offset)["size"] == offset + len(chunk)
        offset += len(chunk)
        if offset >= len(data):
            return


def test_a_large_file_round_trips_in_chunks(workdir):
    data = os.urandom(3 * transfer.CHUNK_BYTES + 12345)
    write_all(workdir, "kmod/ftrace_regs_bench.ko", data)
    path = os.path.join(workdir, "kmod/ftrace_regs_bench.ko")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_all(workdir, path) == data  # absolute, as the agent names its files
    assert read_all(workdir, "kmod/ftrace_regs_bench.ko") == data


def test_an_empty_file_is_written_and_read(workdir):
    write_all(workdir, "empty", b"")
    assert read_chunk(workdir, "empty") == {"data": "", "size": 0, "offset": 0}


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside", "kmod/../../outside", ".", "",
                                  "/", None, 7])
def test_a_path_outside_the_directory_is_refused(workdir, path):
    with pytest.raises(TransferError) as e:
        read_chunk(workdir, path)
    assert e.value.kind == "usage"
    with pytest.raises(TransferError):
        write_chunk(workdir, path, b64(b"x"))
    assert not os.path.exists(os.path.join(os.path.dirname(workdir), "outside"))


def test_a_symlink_out_of_the_directory_is_refused(workdir, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    os.symlink(secret, os.path.join(workdir, "link"))
    os.symlink(tmp_path, os.path.join(workdir, "dirlink"))
    for path in ("link", "dirlink/secret"):
        with pytest.raises(TransferError, match="not a file in the agent's directory"):
            read_chunk(workdir, path)
        with pytest.raises(TransferError):
            write_chunk(workdir, path, b64(b"overwritten"))
    assert secret.read_bytes() == b"not yours"


def test_sizes_and_offsets_are_checked(workdir):
    with pytest.raises(TransferError, match="over the"):
        write_chunk(workdir, "big", b64(b"x" * (transfer.CHUNK_BYTES + 1)))
    with pytest.raises(TransferError, match="grow over"):
        write_chunk(workdir, "big", b64(b"x"), transfer.MAX_FILE_BYTES)
    with pytest.raises(TransferError, match="never started"):
        write_chunk(workdir, "notyet", b64(b"x"), 10)
    write_chunk(workdir, "f", b64(b"abc"))
    with pytest.raises(TransferError, match="has 3 bytes"):
        write_chunk(workdir, "f", b64(b"d"), 5)  # a gap
    with pytest.raises(TransferError, match="bad base64"):
        write_chunk(workdir, "f", "not base64!", 0)
    with pytest.raises(TransferError, match="bad length"):
        read_chunk(workdir, "f", 0, transfer.CHUNK_BYTES + 1)
    with pytest.raises(TransferError, match="bad offset"):
        read_chunk(workdir, "f", -1)
    assert read_chunk(workdir, "f", 10) == {"data": "", "size": 3, "offset": 10}
    with pytest.raises(TransferError, match="no file") as e:
        read_chunk(workdir, "missing")
    assert e.value.kind == "agent"
    with pytest.raises(TransferError, match="not a regular file"):
        read_chunk(workdir, "kmod")
    with pytest.raises(TransferError, match="relative"):
        write_chunk(workdir, os.path.join(workdir, "abs"), b64(b"x"))
    with pytest.raises(TransferError, match="no directory"):
        write_chunk(workdir, "nodir/f", b64(b"x"))
    with pytest.raises(TransferError, match="not a regular file"):
        write_chunk(workdir, "kmod", b64(b"x"))
