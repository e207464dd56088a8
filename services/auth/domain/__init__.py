"""Auth's domain: the rules of SPEC section 3 as plain dataclasses, enums and pure functions.

Nothing here performs I/O, reads the clock or touches asyncio, SQLAlchemy or gRPC: the current
time is passed in as `now` (timezone-aware UTC), ids are chosen by the caller, secrets are hashed
and compared through an injected `KeyedHasher`, and randomness comes from injected generators.
Methods change the objects they are called on and return domain events (`events.py`) that
the service layer turns into effects: rows, outbox notifications, session revocations.

When a rejected attempt itself changes state (a wrong code counts against its limit), the method
returns a `CheckOutcome` instead of raising, so the service layer saves the change first and then
calls `outcome.proof_or_raise()`. Rejections that change nothing are raised directly.

Modules: `reasons` (error reasons), `contacts`, `passwords`, `events`, `proofs`,
`ledger` (code failures per account and kind of code), `otp`, `totp`, `recovery`, `sessions`,
`throttling`, `stepup`, `account`.
"""
