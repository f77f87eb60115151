package app

import (
	"context"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// Administrative actions in the audit trail: an admin's changes (API keys today) are recorded
// like a supervisor's, before they take effect.
const (
	AuditAPIKeyCreate = "api_key_create"
	AuditAPIKeyRevoke = "api_key_revoke"
)

// AuditAdmin records administrative action of p on target before it takes effect; when it
// cannot be recorded the caller must not act (the error says the trail is unavailable).
func (a *App) AuditAdmin(ctx context.Context, p Principal, action, target string, extra map[string]string) error {
	actor := p.Extension
	switch {
	case p.Role == config.RoleOperator:
		// The operator's key is no key of the tenant: its entries say so.
		actor = "operator:" + p.KeyName
	case actor == "":
		actor = "key:" + p.KeyName
	}
	e := store.AuditEntry{
		Tenant: p.Tenant, Actor: actor, Action: action, Target: target, Outcome: "allowed",
		KeyID: p.KeyName, Trigger: "api", Extra: extra,
	}
	if err := a.audit(ctx, e); err != nil {
		return apiFailure(ErrUnavailable, RefuseStoreUnavailable, "audit trail unavailable", err)
	}
	return nil
}
