"""Project tests: unit tests need nothing; tests marked ``cluster`` get the local cluster."""
