#!/usr/bin/python3
"""run.py - run the Python integration test files, a few at a time, and relay their results.

    /usr/bin/python3 tests/integration/run.py BUILD_DIR [test_file.py...] [-- name-filter...]

Runs every tests/integration/test_*.py (or the files given) with this Python, each as
`python3 FILE BUILD_DIR [filters]`, TERN_IT_JOBS at a time (default 3: much of the time is spent
waiting for timeouts and restarts, and each file runs its own tern). Each file's output is printed when it finishes, with
"PASS name" / "FAIL name: reason" lines rewritten to "PASS file:name" so names are unique.
A file that exits non-zero without printing a FAIL line (a crash, a timeout) adds one FAIL.
tests/run-all.sh runs this inside a private network namespace (testkit/netns-run).
Exit status 1 if anything failed.
"""
import glob
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Under TERN_WRAPPER (valgrind) everything is slower: TERN_IT_SLOW as in ternlib.py.
SLOW = float(os.environ.get("TERN_IT_SLOW") or (10 if os.environ.get("TERN_WRAPPER") else 1))
FILE_TIMEOUT = int(int(os.environ.get("TERN_IT_FILE_TIMEOUT", "300")) * SLOW)
# Longest first, so the slow files do not end up alone at the end.
ORDER = ["test_restart.py", "test_timeouts.py", "test_reload.py", "test_errors.py", "test_smtp.py",
         "test_load.py", "test_dovecot.py"]


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    filters = []
    if "--" in args:
        i = args.index("--")
        args, filters = args[:i], args[i + 1:]
    build, files = args[0], args[1:]
    if not files:
        files = sorted(glob.glob(os.path.join(HERE, "test_*.py")),
                       key=lambda p: (ORDER.index(os.path.basename(p))
                                      if os.path.basename(p) in ORDER else len(ORDER), p))
    jobs = max(1, int(os.environ.get("TERN_IT_JOBS", "3")))
    lock = threading.Lock()
    pending = list(files)
    failed = [0]

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                path = pending.pop(0)
            name = os.path.basename(path)[len("test_"):-len(".py")]
            t0 = time.monotonic()
            try:
                r = subprocess.run([sys.executable, "-u", "-B", path, build] + filters,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=FILE_TIMEOUT)
                out, rc = r.stdout.decode("utf-8", "replace"), r.returncode
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"").decode("utf-8", "replace")
                out += "\nFAIL %s-timeout: still running after %ds, killed\n" % (name, FILE_TIMEOUT)
                rc = -1
            lines = []
            nfail = 0
            for line in out.splitlines():
                m = re.match(r"^(PASS|FAIL) (.*)$", line)
                if m:
                    lines.append("%s %s:%s" % (m.group(1), name, m.group(2)))
                    nfail += m.group(1) == "FAIL"
                else:
                    lines.append(line)
            if rc != 0 and nfail == 0:
                lines.append("FAIL %s:file: exited with status %s without a FAIL line" % (name, rc))
                nfail = 1
            with lock:
                failed[0] += nfail
                print("== %s (%.1fs)" % (os.path.relpath(path, os.getcwd()), time.monotonic() - t0))
                print("\n".join(lines), flush=True)

    threads = [threading.Thread(target=worker) for _ in range(min(jobs, len(files)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.exit(1 if failed[0] else 0)


if __name__ == "__main__":
    main()
