package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// AuditScanBatch is how many entries ScanAudit reads with one XRANGE.
const AuditScanBatch = 5000

// ScanAudit reads the tenant's entries recorded in [from, to) (the stream ids, as Audit), oldest
// first, and hands them to fn a batch at a time (at most AuditScanBatch; fn must not keep the
// slice). It pages with XRANGE from where the previous batch stopped, so it reads each entry once
// however many share a millisecond. A zero from or to leaves that end open. It stops at the first
// error of fn or of Redis, or when ctx ends.
func (s *Store) ScanAudit(ctx context.Context, tenant string, from, to time.Time, fn func([]AuditEntry) error) error {
	if err := checkTenant(tenant); err != nil {
		return fmt.Errorf("scan audit: %w", err)
	}
	start := "-"
	if !from.IsZero() {
		start = strconv.FormatInt(max(from.UnixMilli(), 0), 10)
	}
	end := "+"
	if !to.IsZero() {
		ms := to.UnixMilli() - 1 // "ms" as an end id is inclusive of all of ms
		if ms < 0 {
			return nil
		}
		end = strconv.FormatInt(ms, 10)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scan audit of tenant %s: %w", tenant, err)
		}
		msgs, err := s.rdb.XRangeN(ctx, auditKey(tenant), start, end, AuditScanBatch).Result()
		if err != nil {
			return fmt.Errorf("scan audit of tenant %s: %w", tenant, err)
		}
		if len(msgs) == 0 {
			return nil
		}
		entries, err := s.decodeAuditMessages(ctx, tenant, msgs)
		if err != nil {
			return fmt.Errorf("scan audit of tenant %s: %w", tenant, err)
		}
		if err := fn(entries); err != nil {
			return err
		}
		if len(msgs) < AuditScanBatch {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}
