"""Benchmark suites: each module defines ``run(ctx) -> dict`` and the bench factories its
workers call. Module-level imports are limited to numpy and the standard library so that peer
environments can import the factories for their side."""
