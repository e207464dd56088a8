"""Auth's gRPC servicers: they translate protobuf to use-case calls and back, nothing else.

`convert` holds the translations every servicer shares; `auth_service.AuthServicer` composes
the public AuthService from the access and recovery mixins.
"""
