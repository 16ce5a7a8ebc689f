package caddymtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/caddyserver/certmagic"
)

// readinessPrefix is where the mta_sts app (issue 11) keeps each domain's
// latest readiness result: mta_sts/readiness/domains/DOMAIN.json.
const readinessPrefix = "mta_sts/readiness/domains"

// readinessResult is the part of the mta_sts app's readiness result that
// the dashboard shows. Until the app lands it stands in for its type,
// readiness.DomainReport, whose JSON it reads.
type readinessResult struct {
	CheckedAt time.Time            `json:"checked_at"`
	Ready     bool                 `json:"ready"`
	Reasons   []string             `json:"reasons,omitempty"`
	MXHosts   []readinessHostProbe `json:"mx_hosts"`
}

// readinessHostProbe is what a probe of one MX host found.
type readinessHostProbe struct {
	Host       string    `json:"host"`
	Outcome    string    `json:"outcome"`
	TLSVersion string    `json:"tls_version,omitempty"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	Failure    string    `json:"failure,omitempty"`
}

// loadReadiness returns the latest readiness result of domain, nil if it
// was never checked.
func loadReadiness(ctx context.Context, storage certmagic.Storage, domain string) (*readinessResult, error) {
	key := path.Join(readinessPrefix, domain+".json")
	data, err := storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r readinessResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("readiness result %s: %w", key, err)
	}
	return &r, nil
}
