"""The EC2 edge: AWS's published API limits, the shared rate limiter and the boto3 adapter."""
