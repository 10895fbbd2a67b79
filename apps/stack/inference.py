"""A vLLM-like OpenAI-compatible server that runs on CPU.

It "loads the model" for ``MODEL_LOAD_SECONDS`` before ``/health`` turns 200, so startup,
readiness and liveness probes face a real cold start; it answers with deterministic text at
``TOKEN_LATENCY_MS`` per token, so load tests see realistic, stable latencies; it registers with
the hub while it is able to serve and drains on SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from stack.common import HttpError, Request, Service, env_float, every, http_json, log, setup_logging

WORDS = (
    "the", "sea", "trial", "checks", "every", "pod", "node", "and", "budget", "before", "the", "release",
    "goes", "out", "so", "that", "nothing", "breaks", "when", "a", "spot", "node", "is", "reclaimed",
)  # fmt: skip


class Model:
    def __init__(self, name: str, load_seconds: float, token_latency: float) -> None:
        self.name = name
        self.load_seconds = load_seconds
        self.token_latency = token_latency
        self.loaded = threading.Event()
        self.queue = 0
        self._lock = threading.Lock()

    def load(self) -> None:
        log.info("loading model %s (%.0fs)", self.name, self.load_seconds)
        time.sleep(self.load_seconds)
        self.loaded.set()
        log.info("model %s loaded", self.name)

    def complete(self, prompt: str, max_tokens: int) -> list[str]:
        """Deterministic: the same prompt gives the same words, whichever replica answers."""
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
        with self._lock:
            self.queue += 1
        try:
            out = []
            for i in range(max_tokens):
                time.sleep(self.token_latency)
                out.append(WORDS[(seed + i * 7) % len(WORDS)])
            return out
        finally:
            with self._lock:
                self.queue -= 1


GPU_HEALTH_DIR = Path("/run/seatrial/gpus")
"""Where seatrial's device plugin mounts the health of the node's GPUs (read-only)."""


def watch_gpus(stop: threading.Event) -> None:
    """Die the way a CUDA process dies when its GPU fails (an XID such as 79, "fallen off the
    bus"): at once, and again at every restart while the GPU stays broken. The devices are the
    ones the device plugin handed this container in NVIDIA_VISIBLE_DEVICES."""
    devices = [d for d in os.environ.get("NVIDIA_VISIBLE_DEVICES", "").split(",") if d]

    def check() -> None:
        for device in devices:
            try:
                state = (GPU_HEALTH_DIR / device).read_text().strip()
            except OSError:
                continue
            if state.startswith("Unhealthy"):
                log.error("GPU %s failed (%s): CUDA error, the process cannot continue", device, state)
                os._exit(1)

    if devices:
        log.info("using GPU %s", ", ".join(devices))
        check()
        every(0.5, check, stop)


def prompt_of(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HttpError(400, "messages must be a non-empty list")
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, dict))


def main() -> None:
    setup_logging("inference")
    pod = os.environ.get("POD_NAME") or socket.gethostname()
    model = Model(
        os.environ.get("MODEL_NAME", "seatrial-tiny"),
        env_float("MODEL_LOAD_SECONDS", 20),
        env_float("TOKEN_LATENCY_MS", 20) / 1000,
    )
    svc = Service("inference", int(os.environ.get("PORT", "8000")))
    tokens = svc.metrics

    def health(_r: Request) -> tuple[int, Any]:
        if svc.draining.is_set():
            return 503, {"status": "draining"}
        if not model.loaded.is_set():
            return 503, {"status": "loading model"}
        return 200, {"status": "ok"}

    def models(_r: Request) -> tuple[int, Any]:
        return 200, {"object": "list", "data": [{"id": model.name, "object": "model", "owned_by": "seatrial"}]}

    def chat(r: Request) -> tuple[int, Any]:
        if not model.loaded.is_set():
            raise HttpError(503, "model is still loading")
        body = r.json()
        if body.get("model", model.name) != model.name:
            raise HttpError(404, f"model {body.get('model')!r} is not served here (serving {model.name})")
        max_tokens = int(body.get("max_tokens") or 16)
        if not 1 <= max_tokens <= 512:
            raise HttpError(400, "max_tokens must be between 1 and 512")
        started = time.monotonic()
        words = model.complete(prompt_of(body), max_tokens)
        tokens.inc("inference_generated_tokens_total", len(words))
        tokens.inc("inference_requests_total")
        tokens.observe("inference_request_seconds", time.monotonic() - started)
        text = " ".join(words)
        return 200, {
            "id": f"chatcmpl-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model.name,
            "system_fingerprint": pod,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": len(prompt_of(body).split()), "completion_tokens": len(words)},
        }

    def metrics_refresh() -> None:
        tokens.set("inference_queue_depth", model.queue)
        tokens.set("inference_model_loaded", 1 if model.loaded.is_set() else 0)

    svc.route("GET", "/health", health)
    svc.route("GET", "/v1/models", models)
    svc.route("POST", "/v1/chat/completions", chat)

    hub = os.environ.get("HUB_URL")
    stop = threading.Event()
    my_url = f"http://{os.environ.get('POD_IP', '127.0.0.1')}:{svc.port}"

    def register() -> None:
        if hub and model.loaded.is_set() and not svc.draining.is_set():
            status, body = http_json("POST", f"{hub}/v1/register", {"name": pod, "model": model.name, "url": my_url})
            if status != 200:
                raise RuntimeError(f"hub refused registration: {status} {body}")

    def deregister() -> None:
        stop.set()
        if hub:
            try:
                http_json("POST", f"{hub}/v1/deregister", {"name": pod, "model": model.name})
            except OSError as exc:
                log.warning("deregister: %s", exc)

    watch_gpus(stop)
    threading.Thread(target=model.load, daemon=True).start()
    every(1.0, metrics_refresh, stop)
    every(float(os.environ.get("REGISTER_INTERVAL", "3")), register, stop)
    svc.serve(on_drain=deregister, drain_delay=env_float("DRAIN_SECONDS", 3))


if __name__ == "__main__":
    main()
