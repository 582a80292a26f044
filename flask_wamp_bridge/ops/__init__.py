"""What operators use: Prometheus metrics, the health endpoint and the clients of the ``flask wamp`` commands."""
