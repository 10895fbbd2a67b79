"""The GPU node agent (a DaemonSet on every GPU node): exports DCGM-style GPU metrics for its node
and heartbeats the hub, so the hub knows which GPU nodes are alive. Metrics are synthetic on the
local cluster (no GPUs); names and labels follow NVIDIA's DCGM exporter."""

from __future__ import annotations

import os
import socket
import threading
import zlib
from typing import Any

from stack.common import Request, Service, every, http_json, setup_logging


def main() -> None:
    setup_logging("node-agent")
    node = os.environ.get("NODE_NAME") or socket.gethostname()
    gpus = int(os.environ.get("GPU_COUNT", "1"))
    hub = os.environ.get("HUB_URL", "http://hub:8080")
    svc = Service("node-agent", int(os.environ.get("PORT", "9400")))
    stop = threading.Event()
    tick = [0]

    def sample() -> None:
        tick[0] += 1
        for gpu in range(gpus):
            util = (zlib.crc32(f"{node}/{gpu}/{tick[0]}".encode()) % 60) + 20
            svc.metrics.set("DCGM_FI_DEV_GPU_UTIL", util, gpu=str(gpu), Hostname=node)
            svc.metrics.set("DCGM_FI_DEV_GPU_TEMP", 40 + util // 4, gpu=str(gpu), Hostname=node)

    def heartbeat() -> None:
        http_json("POST", f"{hub}/v1/nodes/heartbeat", {"node": node, "gpus": gpus})
        svc.metrics.inc("node_agent_heartbeats_total")

    def healthz(_r: Request) -> tuple[int, Any]:
        return 200, {"status": "ok", "node": node}

    svc.route("GET", "/healthz", healthz)
    every(5, sample, stop)
    every(5, heartbeat, stop)
    svc.serve(on_drain=stop.set)


if __name__ == "__main__":
    main()
