"""The Python peer of the benchmark report (benches/report): the PyPI package
`filelock` (FileLock, default settings: it polls every 0.05 s while another
process holds the lock), speaking the same line protocol as the Go peer
(tests/peers/go/mutexpeer/main.go).

Each subcommand takes the lock file PATH (filelock locks a path, not a name).
Times are Unix nanoseconds (CLOCK_REALTIME, time.time_ns()).

    bench-uncontended PATH N
        N times acquire + release in one loop; prints
        "bench n=N total_ns=T ns_per_op=X".
    handoff PATH
        reads commands from stdin, one per line. "acquire": print
        "waiting PID", acquire (no timeout), print "acquired PID NANOS".
        "release": read the clock, release, print "released PID NANOS"
        (the time read before the release). At EOF: release, exit.
    hold PATH
        print "waiting PID", acquire, print "acquired PID NANOS", hold until
        stdin reaches EOF, release, print "released PID NANOS".

Exit status: 0 on success, 2 on bad usage.
"""

import os
import sys
import time

from filelock import FileLock


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def usage(message):
    sys.stderr.write("filelock_peer: %s\n" % message)
    sys.stderr.write("usage: filelock_peer.py bench-uncontended|handoff|hold PATH [N]\n")
    sys.exit(2)


def bench_uncontended(path, n):
    lock = FileLock(path)
    start = time.perf_counter_ns()
    for _ in range(n):
        lock.acquire()
        lock.release()
    total = time.perf_counter_ns() - start
    say("bench n=%d total_ns=%d ns_per_op=%.1f" % (n, total, total / n if n else 0.0))


def handoff(path):
    pid = os.getpid()
    lock = FileLock(path)
    for line in sys.stdin:
        command = line.strip()
        if command == "acquire":
            say("waiting %d" % pid)
            lock.acquire()
            say("acquired %d %d" % (pid, time.time_ns()))
        elif command == "release":
            t = time.time_ns()
            lock.release()
            say("released %d %d" % (pid, t))
        else:
            usage("handoff: unknown command %r" % command)
    if lock.is_locked:
        lock.release(force=True)


def hold(path):
    pid = os.getpid()
    lock = FileLock(path)
    say("waiting %d" % pid)
    lock.acquire()
    say("acquired %d %d" % (pid, time.time_ns()))
    sys.stdin.read()
    lock.release()
    say("released %d %d" % (pid, time.time_ns()))


def main(argv):
    if len(argv) < 3:
        usage("missing arguments")
    command, path = argv[1], argv[2]
    if command == "bench-uncontended" and len(argv) == 4:
        bench_uncontended(path, int(argv[3]))
    elif command == "handoff" and len(argv) == 3:
        handoff(path)
    elif command == "hold" and len(argv) == 3:
        hold(path)
    else:
        usage("bad subcommand or arguments: %r" % argv[1:])


if __name__ == "__main__":
    main(sys.argv)
