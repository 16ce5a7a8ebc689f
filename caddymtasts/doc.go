// Package caddymtasts is the web side of coredns-mtasts: Caddy v2 modules
// that serve the MTA-STS policies (RFC 8461) a DNS-hosting provider
// publishes with the CoreDNS plugin mtasts, for every customer domain at
// once, and receive the TLS reports about them.
//
//   - http.handlers.mta_sts answers GET /.well-known/mta-sts.txt on
//     mta-sts.D with the policy lines the authoritative DNS publishes at
//     mta-sts.D TXT, read afresh for every request, so the body is never
//     older than the id senders see at _mta-sts.D.
//   - tls.permission.mta_sts lets on-demand TLS obtain or load a certificate
//     for mta-sts.D only while the same DNS says D is managed.
//   - http.handlers.tlsrpt receives the TLS reports (RFC 8460) senders post
//     about managed domains, and keeps them, and a summary per domain and
//     day, in Caddy's storage; admin.api.tlsrpt serves the summaries.
//   - the mta_sts app checks, once per interval, whether the domains whose
//     policy the handler served are ready for mode enforce (every MX host
//     passes a sender's checks, package readiness), and keeps the results
//     in Caddy's storage; the command caddy mta-sts check does it on
//     demand. What changed from one run to the next (a domain's policy,
//     an MX host's TLS) and the certificates of mta-sts.D that failed
//     become events, kept in the storage and posted to a signed webhook;
//     admin.api.mta_sts_events serves them. Its autopilot moves each
//     domain to enforce when the evidence says it is safe, and back to
//     testing when a sender would refuse a host, by writing the domain's
//     settings record into the hidden primary with a TSIG-signed DNS
//     UPDATE (package autopilot decides).
//   - http.handlers.mta_sts_dashboard shows the provider's staff every
//     domain the storage knows, with its policy from DNS, certificate,
//     TLS reports and readiness, as HTML and JSON; the policy handler
//     answers https://mta-sts.D/ with a short page about D's policy.
//
// The DNS is the single source of truth: no module is told which
// domains exist or what their policies say.
package caddymtasts
