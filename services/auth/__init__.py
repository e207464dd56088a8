"""The auth service: accounts, credentials, second factors, sessions and freezes (SPEC section 3).

`services.auth.domain` holds the rules as plain dataclasses and pure functions; adapters
(`services.auth.adapters`) wrap libraries that do work off the event loop, such as password
hashing.
"""
