"""The embedded default: the whole system on one Linux box (demo, e2e tests, benchmarks).

Real Redis, real Celery workers and beat, real Flower, the watcher and agents as real
processes; EC2 and Kubernetes through the emulators in ``vpcnet_sim``; nodes and pods as
network namespaces wired through a simulated VPC.
"""
