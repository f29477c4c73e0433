"""vpcnet's Redis state: key layout (``keys``) and the adapters that read and write it."""
