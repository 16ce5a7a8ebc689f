package caddymtasts

import (
	"encoding/json"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(EventsAdmin{})
}

// eventsRoute is the admin API path of a domain's events:
// /mta-sts/events/DOMAIN.
const eventsRoute = "/mta-sts/events/"

// EventsAdmin serves the events the mta_sts app keeps, on Caddy's admin
// endpoint, like admin.api.tlsrpt the summaries:
//
//	GET /mta-sts/events/DOMAIN[?from=YYYY-MM-DD][&to=YYYY-MM-DD]
//
// answers {"domain": DOMAIN, "events": [EVENT...]}: the stored events of
// DOMAIN (in any letter case, U-labels too) seen from the day from to the
// day to, both included and both optional, oldest first, each the JSON the
// webhook posts. They are read from the storage, so any node of a cluster
// answers for all of them.
type EventsAdmin struct {
	store *eventStore
}

// CaddyModule returns the Caddy module information.
func (EventsAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mta_sts_events",
		New: func() caddy.Module { return new(EventsAdmin) },
	}
}

// Provision takes the config's storage.
func (a *EventsAdmin) Provision(ctx caddy.Context) error {
	a.store = &eventStore{storage: ctx.Storage()}
	return nil
}

// Routes returns the route of the events.
func (a *EventsAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: eventsRoute, Handler: caddy.AdminHandlerFunc(a.serveEvents)}}
}

// eventsAnswer is the body of an answer of serveEvents.
type eventsAnswer struct {
	Domain string  `json:"domain"`
	Events []event `json:"events"`
}

func (a *EventsAdmin) serveEvents(w http.ResponseWriter, r *http.Request) error {
	domain, from, to, err := domainDays(r, eventsRoute)
	if err != nil {
		return err
	}
	events, err := a.store.events(r.Context(), domain, from, to)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(eventsAnswer{Domain: domain, Events: events})
}

// Interface guards
var (
	_ caddy.Provisioner = (*EventsAdmin)(nil)
	_ caddy.AdminRouter = (*EventsAdmin)(nil)
)
