"""Auth's adapters: the libraries and I/O behind the domain's ports."""
