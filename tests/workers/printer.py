"""A script that prints in every way a training script can, for the output-capture tests.

``printer.py <mode> <result-file>``; the run folder's path is written to the result file.
"""

import os
import subprocess
import sys
import time

import em_dist as em

mode, result = sys.argv[1], sys.argv[2]


def done(run) -> None:
    with open(result, "w") as f:
        f.write(str(run.path))


if mode == "basic":
    run = em.create_run(name="printer")
    print("hello from print")
    os.write(1, b"raw write to fd 1\n")
    os.write(2, b"stderr \xff\xfe not utf-8\n")
    subprocess.run(["sh", "-c", "echo from a C-level child; echo child stderr >&2"])
    print("tab\there\r\nprogress 10%\rprogress 100%")
    print("no newline yet", end="", flush=True)
    run.log("train", {"loss": 0.5}, step=1)
    run.finish()
    print("after finish")
    second = em.create_run(name="printer2")
    print("second run line")
    second.finish()
    done(run)
    with open(result + ".2", "w") as f:
        f.write(str(second.path))
elif mode == "off":
    run = em.create_run(name="printer", capture_output=False if len(sys.argv) < 4 else None)
    print("not recorded")
    run.finish()
    done(run)
elif mode == "kill":
    run = em.create_run(name="printer", flush_interval=0.2)
    done(run)
    times = open(result + ".times", "w", buffering=1)
    i = 0
    while True:
        print(f"line {i}", flush=True)
        times.write(f"{i} {time.time()}\n")
        i += 1
        time.sleep(0.01)
elif mode == "bound":
    run = em.create_run(name="printer")
    for i in range(400):
        print(f"line {i:04d} " + "x" * 40)
    sys.stdout.flush()
    run.finish()
    done(run)
elif mode == "fork":
    run = em.create_run(name="printer")
    print("before fork", flush=True)
    pid = os.fork()
    if pid == 0:
        os.write(1, b"from the fork child\n")
        os._exit(0)
    os.waitpid(pid, 0)
    print("after fork", flush=True)
    run.finish()
    done(run)
elif mode == "nested":
    first = em.create_run(name="first")
    print("first only", flush=True)
    second = em.create_run(name="second")
    print("both", flush=True)
    second.finish()
    print("first again", flush=True)
    first.finish()
    done(first)
    with open(result + ".2", "w") as f:
        f.write(str(second.path))
elif mode == "die":
    run = em.create_run(name="printer")
    done(run)
    os.write(1, b"last words\n")
    os.kill(os.getpid(), 9)
elif mode == "crash":
    run = em.create_run(name="printer")
    print("about to fail", flush=True)
    raise RuntimeError("boom")
