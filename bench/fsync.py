"""What an fdatasync costs when the append grows the file, against one over blocks already there.

The event log writes zeros ahead of its appends (docs/architecture.md, "Appends land on blocks
that exist") because on the disks measured a sync that extends the file also writes its new
size. This measures both kinds in the same run, in the directory the data would live in, and
prints the CPU and wall time per sync and their ratios.

    bench/fsync.sh [directory]    (SYNCS=500 BYTES=24000: syncs per kind, bytes per append)
"""

import os
import resource
import sys
import tempfile
import time

SYNCS = int(os.environ.get("SYNCS", "500"))
BYTES = int(os.environ.get("BYTES", "24000"))


def measure(directory, prezeroed):
    """CPU and wall microseconds per append + fdatasync."""
    fd, path = tempfile.mkstemp(prefix="keytrail-fsync-", dir=directory)
    try:
        if prezeroed:
            zeros = b"\0" * (1 << 20)
            for _ in range((SYNCS * BYTES + len(zeros) - 1) // len(zeros)):
                os.write(fd, zeros)
            os.fsync(fd)
        record = b"x" * BYTES
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for i in range(SYNCS):
            os.pwrite(fd, record, i * BYTES)
            os.fdatasync(fd)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return cpu / SYNCS * 1e6, wall / SYNCS * 1e6
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    rounds = [(measure(directory, False), measure(directory, True)) for _ in range(3)]
    print(f"{SYNCS} syncs of {BYTES}-byte appends per kind, in {os.path.abspath(directory)}")
    print("round  growing cpu/wall us   over zeros cpu/wall us   cpu ratio  wall ratio")
    for i, ((gc, gw), (zc, zw)) in enumerate(rounds, 1):
        print(f"{i:>5}  {gc:>8.0f} / {gw:<8.0f}    {zc:>8.0f} / {zw:<8.0f}     "
              f"{gc / zc:>6.2f}    {gw / zw:>6.2f}")


if __name__ == "__main__":
    main()
