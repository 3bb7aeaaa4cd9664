"""Starts a server process and times it from spawn to its first HTTP 200 on a readiness URL.

usage: start-ready.py READY_URL LOG_FILE TIMEOUT_S -- COMMAND...
Prints one JSON line {"pid": ..., "ready_ms": ...} and leaves the process running (its own session,
so the caller ends it by pid). Exits non-zero, with the end of the log, if it is not ready in time
or exits first. The environment is passed through unchanged.
"""
import http.client
import json
import subprocess
import sys
import time
import urllib.parse


def main():
    url, log_path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    command = sys.argv[sys.argv.index("--") + 1:]
    target = urllib.parse.urlsplit(url)
    log = open(log_path, "ab")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    while True:
        elapsed = time.perf_counter() - started
        if process.poll() is not None:
            fail(f"{command[0]} exited with {process.returncode} before it was ready", log_path)
        if elapsed > timeout:
            process.kill()
            fail(f"{command[0]} not ready at {url} after {timeout} s", log_path)
        try:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=1)
            conn.request("GET", target.path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                break
        except OSError:
            pass
        time.sleep(0.002)
    print(json.dumps({"pid": process.pid, "ready_ms": round((time.perf_counter() - started) * 1000, 1)}))


def fail(message, log_path):
    with open(log_path, "rb") as f:
        sys.stderr.write(f.read()[-4000:].decode(errors="replace"))
    sys.exit(message)


if __name__ == "__main__":
    main()
