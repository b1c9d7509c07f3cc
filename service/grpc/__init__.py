"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), for Triton's and
KServe's gRPC clients: ``service.grpc.server`` runs it, ``service.grpc.servicer`` answers its calls
with the REST side's domain code, ``service.grpc.tensors`` reads and writes its tensors.

The modules generated from ``grpc_predict_v2.proto`` define the protocol's messages in protobuf's
default pool, as tritonclient's do: the two cannot be imported into one process (the server runs in
processes of its own, the tests talk to it from outside).
"""
