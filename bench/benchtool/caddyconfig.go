package main

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
)

// caddyConfig prints the JSON config of the HTTPS benchmark: one Caddy with
// two sites for the same host name, the same certificate from Caddy's
// internal CA and the same TLS settings. One serves the policy with the
// mta_sts handler, asking the DNS server for every request; the other serves
// the same bytes, with the same headers, from Caddy's static_response.
func caddyConfig(args []string) error {
	fs := flag.NewFlagSet("caddyconfig", flag.ExitOnError)
	host := fs.String("host", "mta-sts.c000001.bench.test", "the policy host")
	dnsServer := fs.String("dns", "127.0.0.1:53", "authoritative DNS server for the mta_sts handler")
	mtastsAddr := fs.String("mtasts", "127.0.0.1:15441", "listen address of the mta_sts site")
	respondAddr := fs.String("respond", "127.0.0.1:15442", "listen address of the static_response site")
	storage := fs.String("storage", "caddy-data", "Caddy's storage directory")
	admin := fs.String("admin", "", "listen address of Caddy's admin endpoint, for /debug/pprof/ (default: disabled)")
	fs.Parse(args)

	// The policy the plugin publishes for the generated domain.
	domain := strings.TrimPrefix(*host, "mta-sts.")
	p, err := generatedPolicy(domain)
	if err != nil {
		return err
	}
	type obj = map[string]any
	hostRoute := func(handlers ...obj) obj {
		return obj{"match": []obj{{"host": []string{*host}}}, "handle": handlers, "terminal": true}
	}
	cfg := obj{
		"admin":   obj{"disabled": true},
		"storage": obj{"module": "file_system", "root": *storage},
		"logging": obj{"logs": obj{"default": obj{"level": "ERROR"}}},
		"apps": obj{
			"http": obj{"servers": obj{
				"mta_sts": obj{
					"listen":          []string{*mtastsAddr},
					"automatic_https": obj{"disable_redirects": true},
					"routes": []obj{hostRoute(
						obj{"handler": "mta_sts", "servers": []string{*dnsServer}},
						obj{"handler": "static_response", "status_code": 404},
					)},
				},
				"respond": obj{
					"listen":          []string{*respondAddr},
					"automatic_https": obj{"disable_redirects": true},
					"routes": []obj{hostRoute(
						obj{"handler": "subroute", "routes": []obj{
							{
								"match": []obj{{"path": []string{"/.well-known/mta-sts.txt"}}},
								"handle": []obj{{
									"handler":     "static_response",
									"status_code": 200,
									"headers": obj{
										"Content-Type":  []string{"text/plain; charset=utf-8"},
										"Cache-Control": []string{"no-store"},
									},
									"body": string(p.Encode()),
								}},
								"terminal": true,
							},
							{"handle": []obj{{"handler": "static_response", "status_code": 404}}},
						}},
					)},
				},
			}},
			"tls": obj{"automation": obj{"policies": []obj{{
				"subjects": []string{*host},
				"issuers":  []obj{{"module": "internal"}},
			}}}},
			"pki": obj{"certificate_authorities": obj{"local": obj{"install_trust": false}}},
		},
	}
	if *admin != "" {
		cfg["admin"] = obj{"listen": *admin}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(cfg)
}
