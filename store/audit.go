package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultAuditLimit is the number of entries Audit and AuditAfter return when
// limit <= 0.
const DefaultAuditLimit = 1000

// AuditEntry is one supervisor action or refused attempt (SPEC §5).
type AuditEntry struct {
	ID      string            `json:"id"`   // stream id, filled on read
	Time    time.Time         `json:"time"` // when the app decided; now when zero
	Tenant  string            `json:"tenant"`
	Actor   string            `json:"actor"`            // who: an extension or API key name
	Action  string            `json:"action"`           // "join", "mode", "disconnect", ...
	Target  string            `json:"target,omitempty"` // the agent extension or call
	Outcome string            `json:"outcome"`          // "ok", "refused", "failed", ...
	Reason  string            `json:"reason,omitempty"`
	Session string            `json:"session,omitempty"`
	Extra   map[string]string `json:"extra,omitempty"`
}

// Stream field names.
const (
	fTime    = "time"
	fTenant  = "tenant"
	fActor   = "actor"
	fAction  = "action"
	fTarget  = "target"
	fOutcome = "outcome"
	fReason  = "reason"
	fSession = "session"
	fExtra   = "extra"
)

// AppendAudit records e in its tenant's audit stream and returns the entry's
// stream id. The app calls it before acting and refuses the action when it
// fails: an action that cannot be recorded is not done (SPEC §5).
//
// The stream id is assigned by Redis from its own clock (XADD *), which keeps
// ids increasing whatever the app instances' clocks say; e.Time keeps the
// app's time.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (string, error) {
	if err := checkTenant(e.Tenant); err != nil {
		return "", fmt.Errorf("append audit: %w", err)
	}
	if e.Action == "" {
		return "", fmt.Errorf("append audit for tenant %s: %w: empty action", e.Tenant, ErrInvalid)
	}
	if e.Time.IsZero() {
		e.Time = s.clock()
	}
	values := []any{fTime, e.Time.UTC().Format(time.RFC3339Nano), fTenant, e.Tenant, fAction, e.Action}
	for _, kv := range [...]struct{ k, v string }{
		{fActor, e.Actor}, {fTarget, e.Target}, {fOutcome, e.Outcome},
		{fReason, e.Reason}, {fSession, e.Session},
	} {
		if kv.v != "" {
			values = append(values, kv.k, kv.v)
		}
	}
	if len(e.Extra) > 0 {
		raw, err := json.Marshal(e.Extra)
		if err != nil {
			return "", fmt.Errorf("append audit for tenant %s: encoding extra: %w", e.Tenant, err)
		}
		values = append(values, fExtra, string(raw))
	}
	id, err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: auditKey(e.Tenant),
		MaxLen: s.auditMaxLen,
		Approx: true,
		ID:     "*",
		Values: values,
	}).Result()
	if err != nil {
		return "", fmt.Errorf("append audit %s by %s for tenant %s: %w", e.Action, e.Actor, e.Tenant, err)
	}
	return id, nil
}

// Audit returns up to limit entries of the tenant recorded in [from, to),
// oldest first, at millisecond precision of the Redis server's clock (the
// stream ids). A zero from or to leaves that end open. To read on past limit
// entries, continue with AuditAfter from the last id.
func (s *Store) Audit(ctx context.Context, tenant string, from, to time.Time, limit int) ([]AuditEntry, error) {
	start := "-"
	if !from.IsZero() {
		start = strconv.FormatInt(max(from.UnixMilli(), 0), 10)
	}
	out, err := s.auditRange(ctx, tenant, start, to, limit)
	if err != nil {
		return nil, fmt.Errorf("audit of tenant %s from %v to %v: %w", tenant, from, to, err)
	}
	return out, nil
}

// AuditAfter returns up to limit entries of the tenant after the entry whose
// id is afterID and before to (open when zero), oldest first.
func (s *Store) AuditAfter(ctx context.Context, tenant, afterID string, to time.Time, limit int) ([]AuditEntry, error) {
	if err := checkID("audit id", afterID); err != nil {
		return nil, fmt.Errorf("audit of tenant %s: %w", tenant, err)
	}
	out, err := s.auditRange(ctx, tenant, "("+afterID, to, limit)
	if err != nil {
		return nil, fmt.Errorf("audit of tenant %s after %s: %w", tenant, afterID, err)
	}
	return out, nil
}

func (s *Store) auditRange(ctx context.Context, tenant, start string, to time.Time, limit int) ([]AuditEntry, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	end := "+"
	if !to.IsZero() {
		// An incomplete end id "ms" means ms-<max seq>, inclusive; ms-1
		// therefore ends the range just before to's millisecond.
		ms := to.UnixMilli() - 1
		if ms < 0 {
			return []AuditEntry{}, nil
		}
		end = strconv.FormatInt(ms, 10)
	}
	msgs, err := s.rdb.XRangeN(ctx, auditKey(tenant), start, end, int64(limit)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, 0, len(msgs))
	for _, m := range msgs {
		e, err := decodeAudit(m)
		if err != nil {
			return nil, fmt.Errorf("decoding entry %s: %w", m.ID, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func decodeAudit(m redis.XMessage) (AuditEntry, error) {
	str := func(k string) string {
		v, _ := m.Values[k].(string)
		return v
	}
	e := AuditEntry{
		ID:      m.ID,
		Tenant:  str(fTenant),
		Actor:   str(fActor),
		Action:  str(fAction),
		Target:  str(fTarget),
		Outcome: str(fOutcome),
		Reason:  str(fReason),
		Session: str(fSession),
	}
	if t := str(fTime); t != "" {
		var err error
		if e.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return AuditEntry{}, fmt.Errorf("time: %w", err)
		}
	}
	if x := str(fExtra); x != "" {
		if err := json.Unmarshal([]byte(x), &e.Extra); err != nil {
			return AuditEntry{}, fmt.Errorf("extra: %w", err)
		}
	}
	return e, nil
}
