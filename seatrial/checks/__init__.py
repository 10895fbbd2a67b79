"""The conformance check catalogue: pure rules over a stack's objects and its cluster's nodes."""

from seatrial.checks.inventory import Facts, Inventory
from seatrial.checks.model import Check, Finding, Ref, Result
from seatrial.checks.registry import catalogue, run

__all__ = ["Check", "Facts", "Finding", "Inventory", "Ref", "Result", "catalogue", "run"]
