"""Kyc's gRPC servicers: protobuf <-> use-case calls, nothing else."""
