package store

import (
	"context"
	"fmt"
	"time"
)

// Help requests nobody accepts: escalated after the tenant's escalate_after, expired after its
// expire_after (the app's sweep decides when; see app/helpsweep.go). Both are transitions like
// accept, atomic on the request's record: when several app instances sweep at once, or a
// supervisor accepts as the sweep expires, exactly one of them wins and the others get
// ErrState.

// EscalateHelp marks an open request escalated at at. ErrState when it is no longer open or
// already escalated (someone else escalated, accepted or ended it first).
func (s *Store) EscalateHelp(ctx context.Context, tenant, id string, at time.Time) (HelpRequest, error) {
	if at.IsZero() {
		at = s.clock()
	}
	h, err := s.transitionHelp(ctx, tenant, id, func(h *HelpRequest) error {
		if h.State != HelpOpen {
			return fmt.Errorf("request is %s: %w", h.State, ErrState)
		}
		if h.Escalated {
			return fmt.Errorf("request is already escalated: %w", ErrState)
		}
		h.Escalated, h.EscalatedAt = true, at.UTC()
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("escalate help request %s of tenant %s: %w", id, tenant, err)
	}
	return h, nil
}

// ExpireHelp ends an open request nobody accepted: state expired, close reason expired. ErrState
// when it is no longer open.
func (s *Store) ExpireHelp(ctx context.Context, tenant, id string, at time.Time) (HelpRequest, error) {
	if at.IsZero() {
		at = s.clock()
	}
	h, err := s.transitionHelp(ctx, tenant, id, func(h *HelpRequest) error {
		if h.State != HelpOpen {
			return fmt.Errorf("request is %s: %w", h.State, ErrState)
		}
		h.State, h.ClosedAt, h.CloseReason = HelpExpired, at.UTC(), HelpReasonExpired
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("expire help request %s of tenant %s: %w", id, tenant, err)
	}
	return h, nil
}
