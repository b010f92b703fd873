"""The worker: leases durable jobs and runs each kind's stage."""
