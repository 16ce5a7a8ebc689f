// Package e2e is the end-to-end suite: our CoreDNS (with mtasts) and our
// Caddy (with the mta_sts handler and permission module) next to a real ACME
// CA (Pebble), a validating resolver (unbound) and a real MTA-STS client
// (postfix-mta-sts-resolver's mta-sts-query), checked with DNS queries and
// TLS handshakes of its own.
//
// The suite is in test files behind the e2e build tag. It needs root, a
// network namespace with nothing but loopback, the third-party programs and
// our binaries, which e2e/run provides before it runs
// `go test -tags e2e ./e2e/...` inside the namespace. See README.md.
package e2e
