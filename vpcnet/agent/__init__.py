"""The node agent: ENIs, per-ENI routing, SNAT, the IP pool and the CNI socket server."""
