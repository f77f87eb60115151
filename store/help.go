package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Help request states. A request is active while open or in progress: an agent's call has at
// most one active request.
const (
	HelpOpen       = "open"        // raised, nobody has accepted it yet
	HelpInProgress = "in_progress" // accepted (HelpProvidedBy is set)
	HelpClosed     = "closed"      // closed by the agent, or because the call ended
	HelpCancelled  = "cancelled"   // withdrawn by the agent before anyone accepted
	HelpExpired    = "expired"     // nobody accepted it in time (help_timeout.go)
)

// Close reasons of help requests.
const (
	HelpReasonAgent     = "agent"      // the agent (or an admin) closed it
	HelpReasonCallEnded = "call_ended" // the agent's call ended
	HelpReasonCancelled = "cancelled"  // the agent withdrew it
	HelpReasonExpired   = "expired"    // nobody accepted it in time
)

// DefaultHelpTTL is how long a help request's record (and its place in the tenant's list) is
// kept after its last write when Options.HelpTTL is zero.
const DefaultHelpTTL = 30 * 24 * time.Hour

// MaxHelpList bounds what ListHelp returns.
const MaxHelpList = 1000

// ErrState: a help request is not in a state that allows the transition (accepting a request
// another supervisor accepted first, cancelling one in progress, ...).
var ErrState = errors.New("not allowed in the request's state")

// HelpRequest is an agent's request for help on a live call.
type HelpRequest struct {
	ID             string    `json:"id"` // "help-<uuid>"
	Tenant         string    `json:"tenant"`
	Agent          string    `json:"agent"`   // extension number
	CallID         string    `json:"call_id"` // the agent's channel id
	Reason         string    `json:"reason,omitempty"`
	State          string    `json:"state"`
	RaisedBy       string    `json:"raised_by"` // the agent's extension, or "key:<name>" for an admin key
	Via            string    `json:"via"`       // "api" or "phone"
	CreatedAt      time.Time `json:"created_at"`
	Escalated      bool      `json:"escalated,omitempty"` // nobody accepted it in time: the tenant's admins were told
	EscalatedAt    time.Time `json:"escalated_at,omitzero"`
	AcceptedAt     time.Time `json:"accepted_at,omitzero"`
	HelpProvidedBy string    `json:"help_provided_by,omitempty"` // the accepting supervisor's extension
	SessionID      string    `json:"session_id,omitempty"`       // the supervision started on accept
	ClosedAt       time.Time `json:"closed_at,omitzero"`
	CloseReason    string    `json:"close_reason,omitempty"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Active reports whether the request is open or in progress.
func (h *HelpRequest) Active() bool { return h.State == HelpOpen || h.State == HelpInProgress }

// CreateHelp records a new open request. It fails with ErrExists when the agent's call already
// has an active request (or the id is taken): one active request per call, checked and written
// atomically.
func (s *Store) CreateHelp(ctx context.Context, h HelpRequest) (HelpRequest, error) {
	if err := checkTenant(h.Tenant); err != nil {
		return HelpRequest{}, fmt.Errorf("create help request: %w", err)
	}
	if err := errors.Join(checkID("help request id", h.ID), checkID("call id", h.CallID), checkID("agent", h.Agent)); err != nil {
		return HelpRequest{}, fmt.Errorf("create help request for tenant %s: %w", h.Tenant, err)
	}
	now := s.clock()
	if h.CreatedAt.IsZero() {
		h.CreatedAt = now
	}
	h.CreatedAt, h.UpdatedAt = h.CreatedAt.UTC(), now
	h.State = HelpOpen
	rec, act := helpKey(h.Tenant, h.ID), helpCallKey(h.Tenant, h.CallID)
	err := s.optimistic(ctx, func() error {
		return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Exists(ctx, rec, act).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("call %s already has an active help request: %w", h.CallID, ErrExists)
			}
			return s.writeHelp(ctx, tx, h, true)
		}, rec, act)
	})
	if err != nil {
		return HelpRequest{}, fmt.Errorf("create help request %s for tenant %s: %w", h.ID, h.Tenant, err)
	}
	return h, nil
}

// writeHelp writes h and its indexes in one MULTI/EXEC on tx.
func (s *Store) writeHelp(ctx context.Context, tx *redis.Tx, h HelpRequest, created bool) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	ttl := s.helpTTL
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, helpKey(h.Tenant, h.ID), raw, ttl)
		if created {
			p.ZAdd(ctx, helpAllKey(h.Tenant), redis.Z{Score: float64(h.CreatedAt.UnixMilli()), Member: h.ID})
		}
		p.PExpire(ctx, helpAllKey(h.Tenant), ttl)
		if h.Active() {
			p.Set(ctx, helpCallKey(h.Tenant, h.CallID), h.ID, ttl)
			p.ZAdd(ctx, helpLiveKey(h.Tenant), redis.Z{Score: float64(h.CreatedAt.UnixMilli()), Member: h.ID})
			p.PExpire(ctx, helpLiveKey(h.Tenant), ttl)
		} else {
			p.Del(ctx, helpCallKey(h.Tenant, h.CallID))
			p.ZRem(ctx, helpLiveKey(h.Tenant), h.ID)
		}
		return nil
	})
	return err
}

// GetHelp returns one request of tenant (ErrNotFound when there is none, or it expired).
func (s *Store) GetHelp(ctx context.Context, tenant, id string) (HelpRequest, error) {
	if err := checkTenant(tenant); err != nil {
		return HelpRequest{}, fmt.Errorf("get help request: %w", err)
	}
	h, err := getHelp(ctx, s.rdb, tenant, id)
	if err != nil {
		return HelpRequest{}, fmt.Errorf("get help request %s of tenant %s: %w", id, tenant, err)
	}
	return h, nil
}

func getHelp(ctx context.Context, c redis.Cmdable, tenant, id string) (HelpRequest, error) {
	if err := checkID("help request id", id); err != nil {
		return HelpRequest{}, err
	}
	raw, err := c.Get(ctx, helpKey(tenant, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return HelpRequest{}, ErrNotFound
	}
	if err != nil {
		return HelpRequest{}, err
	}
	var h HelpRequest
	if err := json.Unmarshal(raw, &h); err != nil {
		return HelpRequest{}, fmt.Errorf("decoding: %w", err)
	}
	return h, nil
}

// HelpOfCall returns the active request of the agent's call (ErrNotFound when none).
func (s *Store) HelpOfCall(ctx context.Context, tenant, callID string) (HelpRequest, error) {
	if err := checkTenant(tenant); err != nil {
		return HelpRequest{}, fmt.Errorf("help request of call: %w", err)
	}
	id, err := s.rdb.Get(ctx, helpCallKey(tenant, callID)).Result()
	if errors.Is(err, redis.Nil) {
		return HelpRequest{}, fmt.Errorf("help request of call %s: %w", callID, ErrNotFound)
	}
	if err != nil {
		return HelpRequest{}, fmt.Errorf("help request of call %s: %w", callID, err)
	}
	h, err := s.GetHelp(ctx, tenant, id)
	if err == nil && !h.Active() {
		err = fmt.Errorf("help request %s of call %s: %w", id, callID, ErrNotFound)
	}
	return h, err
}

// transitionHelp applies change to the request atomically (WATCH on its record): change returns
// an error (ErrState, ...) to refuse. When many callers transition the same request at once,
// exactly the first to commit sees the state it expects; the others re-read and are refused.
func (s *Store) transitionHelp(ctx context.Context, tenant, id string, change func(*HelpRequest) error) (HelpRequest, error) {
	if err := checkTenant(tenant); err != nil {
		return HelpRequest{}, err
	}
	var out HelpRequest
	key := helpKey(tenant, id)
	err := s.optimistic(ctx, func() error {
		return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			cur, err := getHelp(ctx, tx, tenant, id)
			if err != nil {
				return err
			}
			next := cur
			if err := change(&next); err != nil {
				out = cur
				return err
			}
			next.UpdatedAt = s.clock()
			if err := s.writeHelp(ctx, tx, next, false); err != nil {
				return err
			}
			out = next
			return nil
		}, key)
	})
	return out, err
}

// AcceptHelp moves an open request to in progress with supervisor as HelpProvidedBy. Only one
// accept wins: the others get ErrState (with the request as it is, naming who won).
func (s *Store) AcceptHelp(ctx context.Context, tenant, id, supervisor string, at time.Time) (HelpRequest, error) {
	if at.IsZero() {
		at = s.clock()
	}
	h, err := s.transitionHelp(ctx, tenant, id, func(h *HelpRequest) error {
		if h.State != HelpOpen {
			return fmt.Errorf("request is %s: %w", h.State, ErrState)
		}
		h.State, h.HelpProvidedBy, h.AcceptedAt = HelpInProgress, supervisor, at.UTC()
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("accept help request %s of tenant %s by %s: %w", id, tenant, supervisor, err)
	}
	return h, nil
}

// CloseHelp closes an open or in-progress request for reason (ErrState once it is finished).
func (s *Store) CloseHelp(ctx context.Context, tenant, id, reason string, at time.Time) (HelpRequest, error) {
	if at.IsZero() {
		at = s.clock()
	}
	h, err := s.transitionHelp(ctx, tenant, id, func(h *HelpRequest) error {
		if !h.Active() {
			return fmt.Errorf("request is %s: %w", h.State, ErrState)
		}
		h.State, h.ClosedAt, h.CloseReason = HelpClosed, at.UTC(), reason
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("close help request %s of tenant %s: %w", id, tenant, err)
	}
	return h, nil
}

// CancelHelp withdraws an open request (ErrState once it is accepted or finished).
func (s *Store) CancelHelp(ctx context.Context, tenant, id string, at time.Time) (HelpRequest, error) {
	if at.IsZero() {
		at = s.clock()
	}
	h, err := s.transitionHelp(ctx, tenant, id, func(h *HelpRequest) error {
		if h.State != HelpOpen {
			return fmt.Errorf("request is %s: %w", h.State, ErrState)
		}
		h.State, h.ClosedAt, h.CloseReason = HelpCancelled, at.UTC(), HelpReasonCancelled
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("cancel help request %s of tenant %s: %w", id, tenant, err)
	}
	return h, nil
}

// SetHelpSession records the supervision session started for an in-progress request.
func (s *Store) SetHelpSession(ctx context.Context, tenant, id, session string) (HelpRequest, error) {
	h, err := s.transitionHelp(ctx, tenant, id, func(h *HelpRequest) error {
		h.SessionID = session
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("set session of help request %s of tenant %s: %w", id, tenant, err)
	}
	return h, nil
}

// ListHelp returns the tenant's requests raised in [from, to) (a zero end is open), oldest
// first, at most MaxHelpList.
func (s *Store) ListHelp(ctx context.Context, tenant string, from, to time.Time) ([]HelpRequest, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("list help requests: %w", err)
	}
	lo, hi := "-inf", "+inf"
	if !from.IsZero() {
		lo = strconv.FormatInt(from.UnixMilli(), 10)
	}
	if !to.IsZero() {
		hi = "(" + strconv.FormatInt(to.UnixMilli(), 10)
	}
	out, err := s.helpMembers(ctx, tenant, helpAllKey(tenant), lo, hi)
	if err != nil {
		return nil, fmt.Errorf("list help requests of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// ActiveHelp returns the tenant's open and in-progress requests, oldest first.
func (s *Store) ActiveHelp(ctx context.Context, tenant string) ([]HelpRequest, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("active help requests: %w", err)
	}
	out, err := s.helpMembers(ctx, tenant, helpLiveKey(tenant), "-inf", "+inf")
	if err != nil {
		return nil, fmt.Errorf("active help requests of tenant %s: %w", tenant, err)
	}
	return slices.DeleteFunc(out, func(h HelpRequest) bool { return !h.Active() }), nil
}

// helpMembers loads the requests in the sorted set at key with scores in [lo, hi]; ids whose
// record expired are removed from the set on the way.
func (s *Store) helpMembers(ctx context.Context, tenant, key, lo, hi string) ([]HelpRequest, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: lo, Max: hi, Count: MaxHelpList}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]HelpRequest, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = helpKey(tenant, id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	var gone []any
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			gone = append(gone, ids[i])
			continue
		}
		var h HelpRequest
		if err := json.Unmarshal([]byte(raw), &h); err != nil {
			return nil, fmt.Errorf("decoding help request %s: %w", ids[i], err)
		}
		out = append(out, h)
	}
	if len(gone) > 0 {
		_ = s.rdb.ZRem(ctx, key, gone...).Err() // best effort: pruned again next time
	}
	return out, nil
}
