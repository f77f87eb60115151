package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditFilter selects audit entries for AuditPage. Zero fields select everything.
type AuditFilter struct {
	// From and To bound the entries' stream ids (the Redis server's clock) to [From, To), at
	// millisecond precision.
	From, To time.Time
	// After is a stream id: only entries after it (where the previous page stopped).
	After string
	// Actor matches an entry's actor or its API key id; Agent its target; Action its action.
	Actor, Agent, Action string
}

func (f AuditFilter) match(e AuditEntry) bool {
	return (f.Actor == "" || e.Actor == f.Actor || e.KeyID == f.Actor) &&
		(f.Agent == "" || e.Target == f.Agent) &&
		(f.Action == "" || e.Action == f.Action)
}

// auditPageScan is how many entries one AuditPage reads at most per entry it may return, so
// that a filter matching little cannot make one request read the whole trail: the page is then
// short, and its next id continues the scan.
const auditPageScan = 20

// ValidStreamID reports whether id is a complete Redis stream id ("<ms>-<seq>").
func ValidStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	for _, part := range []string{ms, seq} {
		if part == "" || len(part) > 20 || part[0] == '+' {
			return false
		}
		if _, err := strconv.ParseUint(part, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// AuditPage returns up to limit entries of the tenant selected by f, oldest first, and the
// stream id to pass as f.After for the next page ("" when the range is exhausted). A page may
// hold fewer than limit entries and still have a next one (see auditPageScan).
func (s *Store) AuditPage(ctx context.Context, tenant string, f AuditFilter, limit int) ([]AuditEntry, string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, "", fmt.Errorf("audit page: %w", err)
	}
	if f.After != "" && !ValidStreamID(f.After) {
		return nil, "", fmt.Errorf("audit page of tenant %s: %w: after %q is not a stream id", tenant, ErrInvalid, f.After)
	}
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	start := "-"
	if !f.From.IsZero() {
		start = strconv.FormatInt(max(f.From.UnixMilli(), 0), 10)
	}
	if f.After != "" {
		start = "(" + f.After
		if !f.From.IsZero() && idMillis(f.After) < f.From.UnixMilli() {
			start = strconv.FormatInt(f.From.UnixMilli(), 10)
		}
	}
	end := "+"
	if !f.To.IsZero() {
		ms := f.To.UnixMilli() - 1 // "ms" as an end id is inclusive of all of ms
		if ms < 0 {
			return []AuditEntry{}, "", nil
		}
		end = strconv.FormatInt(ms, 10)
	}
	out := make([]AuditEntry, 0, min(limit, 256))
	budget := limit * auditPageScan
	batch := int64(min(max(limit, 100), 1000))
	for {
		msgs, err := s.rdb.XRangeN(ctx, auditKey(tenant), start, end, batch).Result()
		if err != nil {
			return nil, "", fmt.Errorf("audit page of tenant %s: %w", tenant, err)
		}
		entries, err := s.decodeAuditMessages(ctx, tenant, msgs)
		if err != nil {
			return nil, "", fmt.Errorf("audit page of tenant %s: %w", tenant, err)
		}
		for i, e := range entries {
			budget--
			if f.match(e) {
				out = append(out, e)
			}
			if len(out) == limit || budget == 0 {
				if i == len(entries)-1 && int64(len(msgs)) < batch {
					return out, "", nil // the range ends here
				}
				return out, e.ID, nil
			}
		}
		if int64(len(msgs)) < batch {
			return out, "", nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// idMillis is the millisecond part of a valid stream id.
func idMillis(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}
