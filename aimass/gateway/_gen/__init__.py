"""Generated gRPC stubs of ``proto/aimass/v1/inference.proto``: run ``make proto``, do not edit."""
