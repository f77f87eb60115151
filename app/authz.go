package app

import (
	"errors"
	"fmt"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// The API's role rules, all of them. The HTTP edge asks these and has none of its own; the App's
// methods apply them whoever calls. Who may supervise whom (hunt groups, the tenant's switch) is
// the directory's rule (config.Directory), which authorizeJoin applies.

// Permission is what an API route needs of the caller's role.
type Permission int

const (
	// PermSupervise: calls in progress, supervisions (join, list, read, switch, leave) and the
	// tenant's live events. Supervisor and admin keys.
	PermSupervise Permission = iota + 1
	// PermAdminister: the tenant's API keys and webhook delivery records. Admin keys.
	PermAdminister
	// PermEvents: the tenant's live events, each filtered by SeesEvent (eventauthz.go). Every
	// role.
	PermEvents
	// PermDirectory: the directory administration routes (/v1/tenants...). Admin keys, for
	// their own tenant, and operator keys, for every tenant; the Admin's methods decide which
	// tenant and which change (admin.go).
	PermDirectory
)

// Authorize returns nil when p's role grants perm, else an *Error of kind ErrForbidden.
func (p Principal) Authorize(perm Permission) error {
	var ok bool
	switch perm {
	case PermSupervise:
		ok = p.Role.MaySupervise()
	case PermAdminister:
		ok = p.Role == config.RoleAdmin
	case PermEvents:
		ok = p.Role.Valid()
	case PermDirectory:
		ok = p.Role == config.RoleAdmin || p.Role == config.RoleOperator
	}
	if !ok {
		return apiError(ErrForbidden, "forbidden", "an API key with role "+p.Role.String()+" may not do this")
	}
	return nil
}

// SupervisorFor is the extension that supervises when p asks for a join naming supervisor (""
// when the request names none): a supervisor key acts as its own extension only; an admin key
// acts for the whole tenant, so it must name one (any extension of its tenant: authorizeJoin
// checks that it is one); an agent key may not supervise.
func (p Principal) SupervisorFor(supervisor string) (string, error) {
	switch p.Role {
	case config.RoleSupervisor:
		if supervisor != "" && supervisor != p.Extension {
			return "", apiError(ErrForbidden, "not_own_extension", "a supervisor key acts only as its own extension")
		}
		return p.Extension, nil
	case config.RoleAdmin:
		if supervisor == "" {
			e := apiError(ErrInvalid, "invalid_field", "supervisor: required with an admin key: the extension to call")
			e.Field = "supervisor"
			return "", e
		}
		return supervisor, nil
	default:
		return "", apiError(ErrForbidden, "forbidden", "an API key with role "+p.Role.String()+" may not supervise")
	}
}

// AuthorizeSession returns nil when p may see and act on the session rec: another tenant's
// session does not exist for p (ErrNotFound), agent keys see none, and a supervisor key sees only
// its own (ErrForbidden).
func (p Principal) AuthorizeSession(rec store.Session) error {
	switch {
	case rec.Tenant != p.Tenant:
		return apiError(ErrNotFound, "not_found", "no supervision "+rec.ID)
	case !p.Role.MaySupervise():
		return apiError(ErrForbidden, "forbidden", "an API key with role "+p.Role.String()+" may not see supervisions")
	case p.Role == config.RoleSupervisor && rec.Supervisor != p.Extension:
		return apiError(ErrForbidden, "not_own_session", "this supervision belongs to another supervisor")
	}
	return nil
}

// authorizeJoin decides who supervises whom for an API join: a supervisor key acts as its own
// extension under the hunt-group rules; an admin key may name any extension of its tenant as the
// supervisor (it acts for the whole tenant, as a customer-level manager does on a hosted PBX).
func (a *App) authorizeJoin(p Principal, supervisor, agent string) (*config.Tenant, *config.Extension, *config.Extension, error) {
	tenant, ok := a.dir.Current().Tenant(p.Tenant)
	if !ok {
		return nil, nil, nil, apiError(ErrForbidden, "unknown_tenant", "unknown tenant")
	}
	supervisor, err := p.SupervisorFor(supervisor)
	if err != nil {
		return nil, nil, nil, err
	}
	switch p.Role {
	case config.RoleSupervisor:
		if err := a.dir.Current().CanSupervise(tenant.ID, supervisor, agent); err != nil {
			return nil, nil, nil, apiError(refusalKind(err), refusalCode(err), err.Error())
		}
	case config.RoleAdmin:
		if supervisor == agent {
			return nil, nil, nil, apiError(ErrForbidden, RefuseSelf, "supervisor and agent are the same extension")
		}
		if _, ok := a.dir.Current().Extension(tenant.ID, supervisor); !ok {
			return nil, nil, nil, apiError(ErrInvalid, RefuseUnknownExtension, fmt.Sprintf("supervisor: no extension %q", supervisor))
		}
		if err := a.dir.Current().CanSuperviseAsAdmin(tenant.ID, agent); err != nil {
			return nil, nil, nil, apiError(refusalKind(err), refusalCode(err), err.Error())
		}
	default: // SupervisorFor refused every other role
		return nil, nil, nil, apiError(ErrForbidden, "forbidden", "an API key with role "+p.Role.String()+" may not supervise")
	}
	sup, _ := a.dir.Current().Extension(tenant.ID, supervisor)
	ag, _ := a.dir.Current().Extension(tenant.ID, agent)
	return tenant, sup, ag, nil
}

func refusalKind(err error) error {
	if errors.Is(err, config.ErrUnknownExtension) {
		return ErrNotFound
	}
	return ErrForbidden
}
