package app

import (
	"encoding/json"
	"strings"

	"github.com/earpiece/earpiece/config"
)

// Who receives which live event (GET /v1/events). The tenant's event stream carries every
// notification of the tenant; each principal gets only those it may act on:
//
//   - help events (help.*) reach the people who can do something about the request: admin keys
//     (all of their tenant's), supervisor keys of the agent's hunt groups (whom the directory
//     lets supervise that agent: those who may accept it), and the agent's own key (its own
//     requests only);
//   - call and supervision events reach supervisor and admin keys, as GET /v1/calls does;
//     agent keys get none;
//   - nothing crosses tenants: a notification of another tenant reaches nobody.
//
// Outbound webhooks are the tenant's CRM and get every notification of the tenant.

// helpNotePrefix starts the type of every help notification.
const helpNotePrefix = "help."

// noteHeader is the part of a published notification (a Notification as JSON) the filter reads.
type noteHeader struct {
	Tenant string `json:"tenant"`
	Data   struct {
		Agent string `json:"agent"`
	} `json:"data"`
}

// SeesEvent reports whether p receives the live event of type typ whose data is a Notification
// as JSON (what package outbound publishes), under dir's rules of who may supervise whom.
func (p Principal) SeesEvent(dir *config.Directory, typ string, data []byte) bool {
	var n noteHeader
	decoded := json.Unmarshal(data, &n) == nil
	if decoded && n.Tenant != "" && n.Tenant != p.Tenant {
		return false
	}
	if !strings.HasPrefix(typ, helpNotePrefix) {
		return p.Role.MaySupervise()
	}
	if !decoded || n.Tenant != p.Tenant {
		return false // a help event must say its tenant
	}
	switch p.Role {
	case config.RoleAdmin:
		return true
	case config.RoleSupervisor:
		return n.Data.Agent != "" && dir.CanSupervise(p.Tenant, p.Extension, n.Data.Agent) == nil
	case config.RoleAgent:
		return n.Data.Agent != "" && p.Extension == n.Data.Agent
	}
	return false
}
