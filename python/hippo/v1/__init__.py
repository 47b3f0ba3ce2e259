"""The generated v1 API messages (hippo_pb2) and gRPC stubs (hippo_pb2_grpc).

Both modules are generated from proto/hippo/v1/hippo.proto when the package is built.
"""
