"""The benchmark Job for spot GPU nodes: N steps, each checkpointed in Redis, so a run that a
spot preemption interrupts resumes where it stopped instead of starting over. The result goes
to Redis and to stdout (the Job's log). Every step is logged (``step N of M done``), so a log
proves where a resumed run started and that no step ran twice. ``CHECKPOINTS=off`` turns the
checkpoints off: what a naive batch job does, and what the spot-preemption experiment catches.

Exit codes: 0 done; 1 a transient failure (the Job retries); 42 a configuration error, which the
Job's podFailurePolicy turns into a failed Job at once (retrying cannot fix it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from stack.common import Redis, RedisError, env_float, log, read_secret, setup_logging

CONFIG_ERROR = 42


def main() -> int:
    setup_logging("benchmark")
    run = os.environ.get("RUN_ID", "")
    steps = int(os.environ.get("STEPS", "0") or 0)
    if not run or steps <= 0:
        log.error("RUN_ID and a positive STEPS are required")
        return CONFIG_ERROR
    redis = Redis(
        os.environ.get("REDIS_HOST", "redis"), int(os.environ.get("REDIS_PORT", "6379")), read_secret("REDIS_PASSWORD")
    )
    step_seconds = env_float("STEP_SECONDS", 0.5)
    key = f"benchmark:{run}"
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    deadline = time.monotonic() + env_float("REDIS_WAIT_SECONDS", 120)
    while True:  # the cache may still be starting when the Job does
        try:
            raw = redis.command("GET", f"{key}:checkpoint")
            break
        except (OSError, ConnectionError, RedisError) as exc:
            if time.monotonic() > deadline:
                log.error("redis unreachable: %s", exc)
                return 1
            time.sleep(2)
    checkpoints = os.environ.get("CHECKPOINTS", "on").lower() not in ("off", "false", "0")
    done = int(raw or 0) if checkpoints else 0
    if done:
        log.info("resuming %s at step %d of %d", run, done, steps)
        redis.command("INCR", f"{key}:resumes")
    pod = os.environ.get("POD_NAME") or socket.gethostname()
    total = 0.0
    while done < steps:
        if stopping:
            log.info("SIGTERM at step %d: checkpoint kept, exiting for a retry", done)
            return 1
        t = time.monotonic()
        time.sleep(step_seconds)  # the "work" of one step
        total += time.monotonic() - t
        done += 1
        if checkpoints:
            redis.command("SET", f"{key}:checkpoint", str(done))
        log.info("step %d of %d done", done, steps)
    result = {"run": run, "steps": steps, "pod": pod, "seconds_last_attempt": round(total, 2)}
    redis.command("SET", f"{key}:result", json.dumps(result))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
