// Package caddymtasts is the web side of coredns-mtasts: two Caddy v2
// modules that serve the MTA-STS policies (RFC 8461) a DNS-hosting provider
// publishes with the CoreDNS plugin mtasts, for every customer domain at once.
//
//   - http.handlers.mta_sts answers GET /.well-known/mta-sts.txt on
//     mta-sts.D with the policy lines the authoritative DNS publishes at
//     mta-sts.D TXT, read afresh for every request, so the body is never
//     older than the id senders see at _mta-sts.D.
//   - tls.permission.mta_sts lets on-demand TLS obtain or load a certificate
//     for mta-sts.D only while the same DNS says D is managed.
//
// The DNS is the single source of truth: neither module is told which
// domains exist or what their policies say.
package caddymtasts
