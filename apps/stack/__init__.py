"""The reference stack's services (see apps/README.md)."""
