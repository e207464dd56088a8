"""Auth's use cases. Each is an async function of a unit of work (see `ports.Transactions`)
plus the request's values, returning plain results the API layer translates to protobuf."""
