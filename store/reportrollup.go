package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReportRollupTTL is how long a cached report rollup is kept (keyReportRollup): long enough for
// any report window (at most 31 days) to find the days it spans.
const ReportRollupTTL = 32 * 24 * time.Hour

// AuditMark identifies the first and last entries of a span of a tenant's trail: their stream
// ids and hashes. A span whose marks changed (an entry appended late, trimmed, rewritten) is
// not the span a rollup was computed from. Empty fields: no entry.
type AuditMark struct {
	FirstID   string `json:"first_id"`
	FirstHash string `json:"first_hash"`
	LastID    string `json:"last_id"`
	LastHash  string `json:"last_hash"`
}

// ReportRollupSpan is one cached rollup to look up: its span of the trail [From, To) and the
// key it is cached under (tenant, day, grouping and scope, as the app names it).
type ReportRollupSpan struct {
	From, To time.Time
	Name     string
}

// ReportRollupSlot is what ReportRollups found for a span: the span's marks now and the cached
// bytes (nil: none).
type ReportRollupSlot struct {
	Mark AuditMark
	Data []byte
}

func spanIDs(from, to time.Time) (start, end string, ok bool) {
	ms := to.UnixMilli() - 1
	if ms < 0 {
		return "", "", false
	}
	return strconv.FormatInt(max(from.UnixMilli(), 0), 10), strconv.FormatInt(ms, 10), true
}

// ReportRollups reads, in one round trip, the cached rollups of the tenant's spans and the
// current marks of each span of the trail.
func (s *Store) ReportRollups(ctx context.Context, tenant string, spans []ReportRollupSpan) ([]ReportRollupSlot, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("report rollups: %w", err)
	}
	type cmds struct {
		get         *redis.StringCmd
		first, last *redis.XMessageSliceCmd
	}
	cs := make([]cmds, len(spans))
	out := make([]ReportRollupSlot, len(spans))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sp := range spans {
			cs[i].get = p.Get(ctx, reportRollupKey(tenant, sp.Name))
			if start, end, ok := spanIDs(sp.From, sp.To); ok {
				cs[i].first = p.XRangeN(ctx, auditKey(tenant), start, end, 1)
				cs[i].last = p.XRevRangeN(ctx, auditKey(tenant), end, start, 1)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("report rollups of tenant %s: %w", tenant, err)
	}
	for i := range spans {
		if b, err := cs[i].get.Bytes(); err == nil {
			out[i].Data = b
		} else if !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("report rollups of tenant %s: %w", tenant, err)
		}
		if cs[i].first == nil {
			continue
		}
		first, err1 := cs[i].first.Result()
		last, err2 := cs[i].last.Result()
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("report rollups of tenant %s: %w", tenant, err)
		}
		if len(first) > 0 {
			out[i].Mark.FirstID, out[i].Mark.FirstHash = first[0].ID, fmt.Sprint(first[0].Values["hash"])
		}
		if len(last) > 0 {
			out[i].Mark.LastID, out[i].Mark.LastHash = last[0].ID, fmt.Sprint(last[0].Values["hash"])
		}
	}
	return out, nil
}

// SetReportRollup caches a rollup under its name for ReportRollupTTL.
func (s *Store) SetReportRollup(ctx context.Context, tenant, name string, data []byte) error {
	if err := checkTenant(tenant); err != nil {
		return fmt.Errorf("report rollup: %w", err)
	}
	if err := s.rdb.Set(ctx, reportRollupKey(tenant, name), data, ReportRollupTTL).Err(); err != nil {
		return fmt.Errorf("report rollup of tenant %s: %w", tenant, err)
	}
	return nil
}

// ReportRollupsCached tells, in one round trip, which of the tenant's named rollups are cached
// (whatever their marks: a stale one is computed again by the report that reads it).
func (s *Store) ReportRollupsCached(ctx context.Context, tenant string, names []string) ([]bool, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("report rollups: %w", err)
	}
	cmds := make([]*redis.IntCmd, len(names))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.Exists(ctx, reportRollupKey(tenant, n))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("report rollups of tenant %s: %w", tenant, err)
	}
	out := make([]bool, len(names))
	for i, c := range cmds {
		out[i] = c.Val() > 0
	}
	return out, nil
}
