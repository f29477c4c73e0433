"""Emulators for the embedded default: EC2 (+ instance metadata), the Kubernetes API, and a simulated VPC of network namespaces."""
