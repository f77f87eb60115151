package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Session states, as stored in Session.State. The store gives meaning only to
// StateEnded (no indexes, history TTL, no more updates); the app owns the rest.
const (
	StateRinging = "ringing"
	StateJoining = "joining"
	StateActive  = "active"
	StateEnded   = "ended"
)

// Session is one supervisor supervising one call.
type Session struct {
	ID         string `json:"id"`         // "sup-<uuid>"
	Tenant     string `json:"tenant"`     //
	Supervisor string `json:"supervisor"` // extension number
	Agent      string `json:"agent"`      // extension number
	CallID     string `json:"call_id"`    // earpiece's id for the supervised call
	Origin     string `json:"origin"`     // "feature_code" | "api" | "help_request"
	Mode       string `json:"mode"`       // "spy" | "whisper" | "barge"
	State      string `json:"state"`      // "ringing" | "joining" | "active" | "ended"

	SupervisorChannel string `json:"supervisor_channel,omitempty"`
	AgentChannel      string `json:"agent_channel,omitempty"` // the snooped channel
	SnoopChannel      string `json:"snoop_channel,omitempty"`
	BridgeID          string `json:"bridge_id,omitempty"`
	// Talk is the supervisor's talk paths once made: the agent's, then the customer's, so an
	// instance that adopts the session takes them over instead of making them again.
	Talk []TalkPath `json:"talk,omitempty"`
	// Want is a quieter mode asked for and audited but maybe not heard yet (fewer people hear
	// the supervisor than in Mode): an instance that adopts the session mid-switch goes to it
	// rather than back to Mode. Empty once Mode is what was asked.
	Want     string `json:"want,omitempty"`
	Instance string `json:"instance,omitempty"` // app instance that owns the session
	// Epoch is the lease epoch its owner runs it under: with Instance, the owner's fencing
	// token (instance.go). Node is the node (Stasis app name) the session lives on.
	Epoch int64  `json:"epoch,omitempty"`
	Node  string `json:"node,omitempty"`

	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"` // set by the store on every write
	EndedAt   time.Time `json:"ended_at,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`

	// ModeTime is the time spent in each mode before the current one began
	// (see SwitchMode); ModeSince is when the current mode began, zero when
	// no mode clock runs (not joined yet, or ended).
	ModeTime  map[string]time.Duration `json:"mode_time,omitempty"`
	ModeSince time.Time                `json:"mode_since,omitzero"`

	// HelpRequest is the help request this session answers ("" for none).
	HelpRequest string `json:"help_request,omitempty"`
}

// TalkPath is one path of the supervisor's voice: a bridge holding a snoop on the supervisor's
// channel (voice) and one on the agent's channel that whispers it to one party (ear).
type TalkPath struct {
	Bridge string `json:"bridge"`
	Voice  string `json:"voice"`
	Ear    string `json:"ear"`
}

// Live reports whether the session has not ended.
func (s *Session) Live() bool { return s.State != StateEnded }

// SwitchMode sets the mode to mode as of at, adding the time spent in the
// previous mode (since ModeSince) to ModeTime. Call it when the supervisor is
// joined (first mode) and on each mode change, typically inside UpdateSession.
func (s *Session) SwitchMode(mode string, at time.Time) {
	s.stopModeClock(at)
	s.Mode = mode
	s.ModeSince = at.UTC()
}

// stopModeClock adds the running mode's time to ModeTime and stops the clock.
func (s *Session) stopModeClock(at time.Time) {
	if s.ModeSince.IsZero() {
		return
	}
	if d := at.Sub(s.ModeSince); d > 0 && s.Mode != "" {
		if s.ModeTime == nil {
			s.ModeTime = make(map[string]time.Duration)
		}
		s.ModeTime[s.Mode] += d
	}
	s.ModeSince = time.Time{}
}

// ModeTotals is the time spent in each mode up to now, counting the running
// mode. The result is a new map.
func (s *Session) ModeTotals(now time.Time) map[string]time.Duration {
	c := s.clone()
	c.stopModeClock(now)
	if c.ModeTime == nil {
		return map[string]time.Duration{}
	}
	return c.ModeTime
}

func (s *Session) clone() Session {
	c := *s
	c.ModeTime = maps.Clone(s.ModeTime)
	return c
}

// normalize puts all times in UTC without monotonic readings, so a session
// returned by a write equals the one read back.
func (s *Session) normalize() {
	for _, t := range []*time.Time{&s.StartedAt, &s.UpdatedAt, &s.EndedAt, &s.ModeSince} {
		if t.IsZero() {
			*t = time.Time{}
		} else {
			*t = t.UTC()
		}
	}
}

// footprint is what a session indexes while live; empty once ended.
type footprint struct {
	channels    []string // supervisor and snoop channel ids, non-empty, distinct
	tenant      string
	supervising string // supervisingKey of the session ("" without a call)
}

func footprintOf(s *Session) footprint {
	if s == nil || !s.Live() {
		return footprint{}
	}
	f := footprint{tenant: s.Tenant}
	if s.Supervisor != "" && s.CallID != "" {
		f.supervising = supervisingKey(s.Tenant, s.Supervisor, s.CallID)
	}
	for _, ch := range []string{s.SupervisorChannel, s.SnoopChannel} {
		if ch != "" && !slices.Contains(f.channels, ch) {
			f.channels = append(f.channels, ch)
		}
	}
	return f
}

// CreateSession stores a new live session and its indexes atomically. It
// fails with ErrExists when the id is taken (live or ended) or when one of its
// channels belongs to another live session. A zero StartedAt is set to now.
func (s *Store) CreateSession(ctx context.Context, sess Session) error {
	if err := checkID("session id", sess.ID); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if err := checkTenant(sess.Tenant); err != nil {
		return fmt.Errorf("create session %s: %w", sess.ID, err)
	}
	if !sess.Live() {
		return fmt.Errorf("create session %s: %w: state %q", sess.ID, ErrInvalid, sess.State)
	}
	next := sess.clone()
	now := s.clock()
	if next.StartedAt.IsZero() {
		next.StartedAt = now
	}
	next.UpdatedAt = now
	next.normalize()

	err := s.optimistic(ctx, func() error {
		return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Exists(ctx, sessionKey(next.ID)).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("session id: %w", ErrExists)
			}
			return s.commit(ctx, tx, nil, &next)
		}, sessionKey(next.ID))
	})
	if err != nil {
		return fmt.Errorf("create session %s: %w", sess.ID, err)
	}
	return nil
}

// GetSession returns the session, live or ended (ended ones are kept for
// Options.HistoryTTL).
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	sess, err := getSession(ctx, s.rdb, id)
	if err != nil {
		return Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return sess, nil
}

// ListSessions returns the tenant's live sessions, oldest first.
func (s *Store) ListSessions(ctx context.Context, tenant string) ([]Session, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := s.members(ctx, tenantKey(tenant))
	if err != nil {
		return nil, fmt.Errorf("list sessions of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// members loads the live sessions whose ids are in the set at key. Ids whose
// record has expired (an instance died without ending them) are removed from
// the set on the way.
func (s *Store) members(ctx context.Context, setKey string) ([]Session, error) {
	ids, err := s.rdb.SMembers(ctx, setKey).Result()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []Session{}, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = sessionKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(ids))
	var gone []any
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok { // nil: expired
			gone = append(gone, ids[i])
			continue
		}
		var sess Session
		if err := json.Unmarshal([]byte(raw), &sess); err != nil {
			return nil, fmt.Errorf("decoding session %s: %w", ids[i], err)
		}
		// An ended session left its sets in the same transaction, so an
		// ended member can only be an ended record read after SMEMBERS.
		if sess.Live() {
			out = append(out, sess)
		}
	}
	if len(gone) > 0 {
		// Best effort: a failure only leaves work for the next reader, and
		// the read itself succeeded. A missing record cannot come back (ids
		// are never reused), so this races with nothing.
		_ = s.rdb.SRem(ctx, setKey, gone...).Err()
	}
	slices.SortFunc(out, func(a, b Session) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// UpdateSession applies fn to the current session and stores the result,
// atomically with any index change (a new snoop channel, say), and refreshes the TTLs of the session's keys. fn runs again on a
// fresh copy if another writer got in first, so it must have no side effects
// beyond its argument; after Options.MaxRetries lost races the update fails
// with ErrConflict. An error from fn aborts the update and is returned
// wrapped.
//
// Updating an ended session fails with ErrEnded. fn may not change ID or
// Tenant. fn may set State to StateEnded, which ends the session as
// EndSession would, except that EndedAt and the mode clock are fn's business.
func (s *Store) UpdateSession(ctx context.Context, id string, fn func(*Session) error) (Session, error) {
	out, err := s.modify(ctx, id, func(cur Session) (Session, bool, error) {
		if !cur.Live() {
			return cur, false, ErrEnded
		}
		next := cur.clone()
		if err := fn(&next); err != nil {
			return cur, false, err
		}
		return next, true, nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("update session %s: %w", id, err)
	}
	return out, nil
}

// EndSession marks the session ended at at (now when zero) for reason,
// closes its mode clock, removes it from every live index atomically and keeps
// the record for Options.HistoryTTL. Ending an ended session returns it
// unchanged, so cleanup paths can call it without coordinating.
func (s *Store) EndSession(ctx context.Context, id, reason string, at time.Time) (Session, error) {
	out, err := s.modify(ctx, id, func(cur Session) (Session, bool, error) {
		if !cur.Live() {
			return cur, false, nil
		}
		next := cur.clone()
		if at.IsZero() {
			at = s.clock()
		}
		next.stopModeClock(at)
		next.State = StateEnded
		next.EndedAt = at
		next.EndReason = reason
		return next, true, nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("end session %s: %w", id, err)
	}
	return out, nil
}

// modify is the optimistic read-change-write loop behind UpdateSession and
// EndSession. change returns the new session and whether to write it.
func (s *Store) modify(ctx context.Context, id string, change func(cur Session) (Session, bool, error)) (Session, error) {
	if err := checkID("session id", id); err != nil {
		return Session{}, err
	}
	var out Session
	err := s.optimistic(ctx, func() error {
		return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			cur, err := getSession(ctx, tx, id)
			if err != nil {
				return err
			}
			next, write, err := change(cur)
			if err != nil {
				return err
			}
			if !write {
				out = cur
				return nil
			}
			if next.ID != cur.ID {
				return fmt.Errorf("%w: id changed to %q", ErrInvalid, next.ID)
			}
			if next.Tenant != cur.Tenant {
				return fmt.Errorf("%w: tenant changed from %q to %q", ErrInvalid, cur.Tenant, next.Tenant)
			}
			next.UpdatedAt = s.clock()
			next.normalize()
			if err := s.commit(ctx, tx, &cur, &next); err != nil {
				return err
			}
			out = next
			return nil
		}, sessionKey(id))
	})
	return out, err
}

// commit writes next (replacing old, nil for a new session) and moves its
// indexes from old's footprint to next's, in one MULTI/EXEC on tx, whose
// WATCH already covers the session key. It watches the channel keys it
// reads, so the EXEC fails (redis.TxFailedErr) if any of them changed.
func (s *Store) commit(ctx context.Context, tx *redis.Tx, old, next *Session) error {
	of, nf := footprintOf(old), footprintOf(next)
	added := slices.DeleteFunc(slices.Clone(nf.channels), func(ch string) bool { return slices.Contains(of.channels, ch) })
	removed := slices.DeleteFunc(slices.Clone(of.channels), func(ch string) bool { return slices.Contains(nf.channels, ch) })

	if touched := append(slices.Clone(added), removed...); len(touched) > 0 {
		keys := make([]string, len(touched))
		for i, ch := range touched {
			keys[i] = channelKey(ch)
		}
		if err := tx.Watch(ctx, keys...).Err(); err != nil {
			return err
		}
	}
	for _, ch := range added {
		if err := channelFree(ctx, tx, ch, next.ID); err != nil {
			return err
		}
	}
	// Only drop index entries that still point at this session.
	var drop []string
	for _, ch := range removed {
		owner, err := tx.Get(ctx, channelKey(ch)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if owner == next.ID {
			drop = append(drop, channelKey(ch))
		}
	}
	if of.supervising != "" && of.supervising != nf.supervising {
		owner, err := tx.Get(ctx, of.supervising).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if owner == next.ID {
			drop = append(drop, of.supervising)
		}
	}

	raw, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encoding session: %w", err)
	}
	ttl := s.ttl
	if !next.Live() {
		ttl = s.historyTTL
	}
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, sessionKey(next.ID), raw, ttl)
		if len(drop) > 0 {
			p.Del(ctx, drop...)
		}
		for _, ch := range nf.channels {
			p.Set(ctx, channelKey(ch), next.ID, s.ttl)
		}
		if nf.supervising != "" {
			p.Set(ctx, nf.supervising, next.ID, s.ttl)
		}
		if of.tenant != "" && of.tenant != nf.tenant {
			p.SRem(ctx, tenantKey(of.tenant), next.ID)
		}
		if nf.tenant != "" {
			p.SAdd(ctx, tenantKey(nf.tenant), next.ID)
			p.Expire(ctx, tenantKey(nf.tenant), s.ttl)
		}
		return nil
	})
	return err
}

// LiveSessionFor returns the live session in which supervisor supervises call
// in tenant, or ErrNotFound: one read of an index and one of the record,
// however many sessions are live.
func (s *Store) LiveSessionFor(ctx context.Context, tenant, supervisor, call string) (Session, error) {
	id, err := s.rdb.Get(ctx, supervisingKey(tenant, supervisor, call)).Result()
	if errors.Is(err, redis.Nil) {
		return Session{}, fmt.Errorf("session of %s on %s: %w", supervisor, call, ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("session of %s on %s: %w", supervisor, call, err)
	}
	sess, err := s.GetSession(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if !sess.Live() || sess.Supervisor != supervisor || sess.CallID != call {
		return Session{}, fmt.Errorf("session of %s on %s: %w", supervisor, call, ErrNotFound)
	}
	return sess, nil
}

// channelFree fails with ErrExists if ch is indexed to a live session other
// than id. An index entry whose session has ended or expired is stale and
// may be taken over; the owner's record is watched so that it cannot come
// alive (or be re-indexed) unnoticed before EXEC.
func channelFree(ctx context.Context, tx *redis.Tx, ch, id string) error {
	owner, err := tx.Get(ctx, channelKey(ch)).Result()
	if errors.Is(err, redis.Nil) || (err == nil && owner == id) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.Watch(ctx, sessionKey(owner)).Err(); err != nil {
		return err
	}
	other, err := getSession(ctx, tx, owner)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case other.Live():
		return fmt.Errorf("channel %s belongs to session %s: %w", ch, owner, ErrExists)
	}
	return nil
}

// getSession reads and decodes one session record.
func getSession(ctx context.Context, c redis.Cmdable, id string) (Session, error) {
	if id == "" {
		return Session{}, fmt.Errorf("%w: empty session id", ErrInvalid)
	}
	raw, err := c.Get(ctx, sessionKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, err
	}
	var sess Session
	if err := json.Unmarshal(raw, &sess); err != nil {
		return Session{}, fmt.Errorf("decoding session: %w", err)
	}
	return sess, nil
}
