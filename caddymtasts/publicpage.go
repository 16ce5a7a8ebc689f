package caddymtasts

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/coredns-mtasts/mtasts/policy"
)

// publicPage is what https://mta-sts.D/ shows a customer or a curious
// visitor: the policy senders get, and nothing else. Nothing in it comes
// from the TLS reports or the readiness checks, which are the provider's.
type publicPage struct {
	Domain string
	Mode   policy.Mode
	ID     string
	Text   string
}

// servePublicPage answers GET or HEAD of the site root of mta-sts.D with a
// short page about D's policy. The policy is looked up as for the policy
// path, with the same answers when there is none (404) or it cannot be
// read (503), so the page never shows what the policy path would not
// serve. A request for another host goes to next: the root of other sites
// in a catch-all is not the handler's.
func (h *Handler) servePublicPage(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	domain, err := policyDomain(r.Host)
	if err != nil {
		return next.ServeHTTP(w, r)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, nil)
	}
	body, err := h.source.lookup(r.Context(), domain)
	if err != nil {
		if errors.Is(err, errNotManaged) {
			return caddyhttp.Error(http.StatusNotFound, err)
		}
		h.unavailable(w, lookupResult(err), domain, err)
		return nil
	}
	// The lookup parsed and checked the body already.
	p, _ := policy.Parse(body)
	return writePage(w, r, publicTemplate, publicPage{Domain: domain, Mode: p.Mode, ID: policy.IDOf(body), Text: string(body)}, false)
}
