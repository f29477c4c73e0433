"""The CNI plugin (`vpcnet-cni`) and its wire protocol with the agent: standard library only."""
