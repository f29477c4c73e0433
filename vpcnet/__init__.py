"""vpcnet: real VPC IP addresses for Kubernetes pods on AWS."""

__version__ = "0.1.0"
