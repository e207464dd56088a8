"""walletsec: the security team's command line over the services' admin gRPC APIs.

`cli.py` assembles the commands; `connection.py` holds the operator identity, the addresses
and the one-line errors; each command group lives in a module of its own (`accounts`,
`bulk`, `audit`, `kyc`), so a service's commands (refund's queue) plug in as one more module
registered in `cli.py` and, for its audit chain, one entry in `audit.AUDITED`.
"""
