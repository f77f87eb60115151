package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The audit trail keeps every entry for Options.AuditRetention, by time and never by count:
// whoever can make entries (a supervisor key trying joins it may not make, say) cannot push
// the history out by making many. What bounds the trail's size is then the rate of entries, so
// repeated refusals are folded: of the refusals of one actor with the same action and reason
// within one Options.AuditBurstWindow, the first Options.AuditBurstEntries are entries, and the
// last of those counts the others in its Repeats. A person mistyping a code keeps every detail;
// a flood makes a few entries a minute.

// DefaultAuditLimit is the number of entries Audit returns when limit <= 0.
const DefaultAuditLimit = 1000

// OutcomeRefused is the outcome of a refused attempt; such entries are folded (see above).
const OutcomeRefused = "refused"

// AuditEntry is one supervisor action or refused attempt: when, which
// tenant, who, what, on whom, and how it ended.
type AuditEntry struct {
	ID      string            `json:"id"`   // stream id, filled on read
	Time    time.Time         `json:"time"` // when the app decided; now when zero
	Tenant  string            `json:"tenant"`
	Actor   string            `json:"actor"`            // who: an extension, "key:<name>" or "earpiece"
	Action  string            `json:"action"`           // "join", "mode", "disconnect", ...
	Target  string            `json:"target,omitempty"` // the agent extension or call
	Outcome string            `json:"outcome"`          // "ok", "refused", "failed", ...
	Reason  string            `json:"reason,omitempty"`
	Session string            `json:"session,omitempty"`
	Extra   map[string]string `json:"extra,omitempty"`
	// KeyID is the API key (its name) the actor acted with, when it acted through the API.
	KeyID string `json:"key_id,omitempty"`
	// Call and HelpRequest are the call (the agent's channel id) and the help request the
	// action was about, when known.
	Call        string `json:"call,omitempty"`
	HelpRequest string `json:"help_request,omitempty"`
	// Mode is the supervision mode the action asked for or ended in; Trigger is how it was
	// asked: "feature_code", "dtmf", "api", "phone", "system".
	Mode    string `json:"mode,omitempty"`
	Trigger string `json:"trigger,omitempty"`
	// Seq, PrevHash and Hash are the entry's place in its tenant's hash chain, set by
	// AppendAudit (see auditchain.go); ignored on append, filled on read. Entries written
	// before the chain existed have none.
	Seq      int64  `json:"seq,omitempty"`
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
	// Repeats is, on read, how many more refusals of the same actor, action and reason the
	// entry stands for, within its Options.AuditBurstWindow: their targets, sessions and
	// extras are not kept.
	Repeats int64 `json:"repeats,omitempty"`
	// Once, when set on append, makes the append idempotent: of the appends of a tenant's
	// entries with the same Once within AuditOnceTTL, the first writes the entry and the others
	// write nothing and return its stream id. Replaying an append (a write whose answer was
	// lost, the app's journal after a Redis outage) then writes it once. Not stored in the
	// entry, never read back.
	Once string `json:"-"`
}

// AuditOnceTTL is how long an AuditEntry.Once marker keeps later appends of the same Once from
// writing (the longest a replay can come after the first attempt).
const AuditOnceTTL = 7 * 24 * time.Hour

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
	fBurst   = "burst" // on the last entry of a burst: its id (keyAuditBurst counts the burst)
	fKeyID   = "key"
	fCall    = "call"
	fHelp    = "help"
	fMode    = "mode"
	fTrigger = "trigger"
	fSeq     = "seq"  // the entry's number in its tenant's chain, from 1
	fPrev    = "prev" // hex SHA-256 of the previous entry ("" for the first)
	fHash    = "hash" // hex SHA-256 of this entry (auditHash)
)

// auditBurstScript counts a refusal in its burst. KEYS[1] the burst's counter; ARGV[1] its
// TTL in ms, set by the burst's first refusal. Returns the refusal's number in the burst.
var auditBurstScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// AppendAudit records e in its tenant's audit stream and returns the entry's
// stream id. The app calls it before acting and refuses the action when it
// fails: an action that cannot be recorded is not done.
//
// A refusal (Outcome OutcomeRefused) beyond the first AuditBurstEntries of the
// same actor, action and reason within the current AuditBurstWindow is
// counted on the last of those entries instead (see Repeats); AppendAudit
// then returns "".
//
// The stream id is assigned by Redis from its own clock (XADD *), which keeps
// ids increasing whatever the app instances' clocks say; e.Time keeps the
// app's time. Entries older than AuditRetention by that clock are dropped,
// leaving a signed checkpoint (auditchain.go). The entry joins its tenant's
// hash chain: e.Seq, e.PrevHash and e.Hash are set by the store.
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
	if e.Once != "" {
		// Written already (a replay): nothing more, not even the refusal's burst count. The
		// append script checks again, atomically, for an append racing this one.
		id, err := s.rdb.Get(ctx, auditOnceKey(e.Tenant, e.Once)).Result()
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, redis.Nil):
			return "", fmt.Errorf("append audit %s by %s for tenant %s: %w", e.Action, e.Actor, e.Tenant, err)
		}
	}
	var burst string // set on the burst's last entry
	if e.Outcome == OutcomeRefused {
		id := s.burstID(e)
		n, err := auditBurstScript.Run(ctx, s.rdb, []string{auditBurstKey(e.Tenant, id)}, millis(s.auditRetention)).Int64()
		if err != nil {
			return "", fmt.Errorf("append audit %s by %s for tenant %s: counting the refusal: %w", e.Action, e.Actor, e.Tenant, err)
		}
		switch {
		case n > int64(s.auditBurstEntries):
			return "", nil // counted on the burst's last entry
		case n == int64(s.auditBurstEntries):
			burst = id
		}
	}
	values := map[string]string{fTime: e.Time.UTC().Format(time.RFC3339Nano), fTenant: e.Tenant, fAction: e.Action}
	for _, kv := range [...]struct{ k, v string }{
		{fActor, e.Actor}, {fTarget, e.Target}, {fOutcome, e.Outcome},
		{fReason, e.Reason}, {fSession, e.Session}, {fKeyID, e.KeyID}, {fCall, e.Call},
		{fHelp, e.HelpRequest}, {fMode, e.Mode}, {fTrigger, e.Trigger}, {fBurst, burst},
	} {
		if kv.v != "" {
			values[kv.k] = kv.v
		}
	}
	if len(e.Extra) > 0 {
		raw, err := json.Marshal(e.Extra)
		if err != nil {
			return "", fmt.Errorf("append audit for tenant %s: encoding extra: %w", e.Tenant, err)
		}
		values[fExtra] = string(raw)
	}
	id, err := s.appendChained(ctx, e.Tenant, e.Once, values)
	if err != nil {
		return "", fmt.Errorf("append audit %s by %s for tenant %s: %w", e.Action, e.Actor, e.Tenant, err)
	}
	return id, nil
}

// burstID names the burst of refusal e: its actor, action and reason, and the window of
// AuditBurstWindow its time falls in.
func (s *Store) burstID(e AuditEntry) string {
	h := sha256.New()
	for _, part := range []string{e.Actor, e.Action, e.Reason} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	window := e.Time.UnixMilli() / max(s.auditBurst.Milliseconds(), 1)
	return hex.EncodeToString(h.Sum(nil)[:12]) + "-" + strconv.FormatInt(window, 10)
}

// Audit returns up to limit entries of the tenant recorded in [from, to),
// oldest first, at millisecond precision of the Redis server's clock (the
// stream ids). A zero from or to leaves that end open. To read on past limit
// entries, continue from the last entry's time (entries of that millisecond
// come again).
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
	return s.decodeAuditMessages(ctx, tenant, msgs)
}

// decodeAuditMessages decodes stream entries of the tenant's trail, with their Repeats.
func (s *Store) decodeAuditMessages(ctx context.Context, tenant string, msgs []redis.XMessage) ([]AuditEntry, error) {
	out := make([]AuditEntry, 0, len(msgs))
	repeats := map[int]*redis.StringCmd{}
	pipe := s.rdb.Pipeline()
	for i, m := range msgs {
		e, err := decodeAudit(m)
		if err != nil {
			return nil, fmt.Errorf("decoding entry %s: %w", m.ID, err)
		}
		if b, _ := m.Values[fBurst].(string); b != "" {
			repeats[i] = pipe.Get(ctx, auditBurstKey(tenant, b))
		}
		out = append(out, e)
	}
	if len(repeats) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("reading refusal repeats: %w", err)
		}
		for i, cmd := range repeats {
			n, _ := cmd.Int64() // gone (expired with the entry's retention): 0
			out[i].Repeats = max(n-int64(s.auditBurstEntries), 0)
		}
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

		KeyID:       str(fKeyID),
		Call:        str(fCall),
		HelpRequest: str(fHelp),
		Mode:        str(fMode),
		Trigger:     str(fTrigger),
		PrevHash:    str(fPrev),
		Hash:        str(fHash),
	}
	if n := str(fSeq); n != "" {
		var err error
		if e.Seq, err = strconv.ParseInt(n, 10, 64); err != nil {
			return AuditEntry{}, fmt.Errorf("seq: %w", err)
		}
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
