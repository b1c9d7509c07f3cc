"""The Open Inference Protocol (KServe's v2, served under ``/v2``): its routes, its request and
response models, and the codec of its JSON and binary tensor bodies."""
