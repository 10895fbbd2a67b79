"""seatrial: conformance and chaos trials for ML serving stacks on Kubernetes."""

__version__ = "0.1.0"
