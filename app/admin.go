package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Live administration of the directory: tenants (the operator's), and each tenant's
// extensions, hunt groups and members, dialing rules, policies and webhooks (its admin's, and
// the operator's). Every change goes through DirectorySync.Edit, so it is validated whole with
// check-config's rules and in force on every instance within a poll; the HTTP edge only binds
// and answers.
//
// Who may do what:
//
//   - an operator key (config operator_keys) may do everything in every tenant, and alone
//     creates and deletes tenants, switches a tenant's supervision on and off, and names an
//     environment variable (secret_env) or a local address (allow_local) for a webhook:
//     both reach into the instances themselves (a variable of their environment would sign
//     the tenant's webhooks, a local address is the SSRF the URL check exists to stop);
//   - the operator alone gives a tenant its endpoints (config.Tenant.Endpoints: the devices its
//     extensions may use, as patterns) and, in a tenant it gave none, chooses its extensions'
//     endpoints (creating an extension, changing its endpoint): an endpoint is a device on the
//     PBX, and one no tenant lists yet may be another customer's phone, which an extension and
//     a hunt group would let the tenant supervise. In a tenant with endpoints, its admin
//     chooses among them (validation refuses any other);
//   - an admin key administers its own tenant; another tenant does not exist for it (404,
//     whatever that tenant's existence), so nothing about other tenants leaks, validation
//     messages included;
//   - agent and supervisor keys may do none of it (403).
//
// Every change is audited in the tenant's trail with the resource before and after (views:
// never a secret), before it is written: the entry is appended once the change validated and
// its preconditions held, inside the directory's write lock, and a change whose entry cannot be
// written is not made.
//
// Choices:
//
//   - Removing an extension that hunt groups list is refused (409 extension_in_use, naming
//     each membership as a directory field): removing memberships on the way would change who
//     may supervise whom as a side effect nobody asked for; each membership is removed (and
//     audited) on its own first.
//   - Deleting a tenant with supervisions in progress is refused (409 tenant_busy): their
//     bridges, claims and audit entries belong to a tenant that would no longer exist. Switch
//     its supervision off first (no new ones start), let them end, then delete. A session
//     starting on another instance in the same instant can still slip through; it ends as
//     usual. The tenant's API keys created through the API are revoked with it (and any left
//     over are revoked when a tenant of the same id is created), so that they never come back
//     to life with a new tenant of that id. Its audit trail stays.
//   - Deleting an extension revokes the API keys created through the API that act as it (each
//     audited, api_key_revoke, before the directory is written), and creating one revokes any
//     such key left over (an extension imported away, a key created while its extension was
//     being deleted): a new extension of that number never inherits an old one's keys.

// Audit actions of the administration API.
const (
	AuditTenantCreate      = "directory_tenant_create"
	AuditTenantUpdate      = "directory_tenant_update"
	AuditTenantDelete      = "directory_tenant_delete"
	AuditSupervisionOn     = "tenant_supervision_on"
	AuditSupervisionOff    = "tenant_supervision_off"
	AuditExtensionCreate   = "directory_extension_create"
	AuditExtensionUpdate   = "directory_extension_update"
	AuditExtensionDelete   = "directory_extension_delete"
	AuditHuntGroupCreate   = "directory_hunt_group_create"
	AuditHuntGroupUpdate   = "directory_hunt_group_update"
	AuditHuntGroupDelete   = "directory_hunt_group_delete"
	AuditMemberCreate      = "directory_member_create"
	AuditMemberUpdate      = "directory_member_update"
	AuditMemberDelete      = "directory_member_delete"
	AuditDialingRulesSet   = "directory_dialing_rules_update"
	AuditAnnounceSet       = "directory_announce_update"
	AuditHelpPolicySet     = "directory_help_policy_update"
	AuditWebhookCreate     = "directory_webhook_create"
	AuditWebhookDelete     = "directory_webhook_delete"
	codeInvalidDirectory   = "invalid_directory"
	codeOperatorOnly       = "operator_only"
	codeNoSuchTenant       = "no_such_tenant"
	codeDirectoryBusy      = "directory_busy"
	codeExtensionInUse     = "extension_in_use"
	codeTenantBusy         = "tenant_busy"
	codeDirectoryNotLoaded = "directory_unavailable"
)

// DirectoryEditor is what Admin needs of the directory (*DirectorySync).
type DirectoryEditor interface {
	Live() *config.Live
	Edit(ctx context.Context, by string, change func(cur []config.Tenant, rev int64) ([]config.Tenant, error),
		commit func(next *config.Directory) error) (int64, error)
}

// AdminAuditor records an administrative action before it takes effect (*App).
type AdminAuditor interface {
	AuditAdmin(ctx context.Context, p Principal, action, target string, extra map[string]string) error
}

// AdminStore is what Admin needs of the store (*store.Store): a tenant's supervisions in
// progress (a busy tenant is not deleted) and its API keys created through the API (revoked
// with it).
type AdminStore interface {
	ListSessions(ctx context.Context, tenant string) ([]store.Session, error)
	APIKeys(ctx context.Context, tenant string) ([]store.APIKey, error)
	RevokeAPIKey(ctx context.Context, tenant, name string) (store.APIKey, error)
}

// Admin is the directory's administration (the /v1/tenants routes).
type Admin struct {
	dir   DirectoryEditor
	audit AdminAuditor
	st    AdminStore
	log   zerolog.Logger
}

// NewAdmin returns the administration of dir, auditing with audit.
func NewAdmin(dir DirectoryEditor, audit AdminAuditor, st AdminStore, log zerolog.Logger) *Admin {
	return &Admin{dir: dir, audit: audit, st: st, log: log}
}

// Lists of resources, as GET answers them.
type (
	TenantList struct {
		Tenants []TenantView `json:"tenants"`
	}
	ExtensionList struct {
		Extensions []ExtensionView `json:"extensions"`
	}
	HuntGroupList struct {
		HuntGroups []HuntGroupView `json:"hunt_groups"`
	}
	MemberList struct {
		Members []MemberView `json:"members"`
	}
	WebhookList struct {
		Webhooks []WebhookView `json:"webhooks"`
	}
)

// ---- authorization

// AuthorizeTenant lets p administer tenant of d (the /v1/tenants/{tenant} routes the edge serves
// itself, such as API keys): the operator any tenant d has, an admin its own; another tenant, or
// one d lacks, is 404 no_such_tenant; other roles 403.
func AuthorizeTenant(p Principal, d *config.Directory, tenant string) error {
	if err := scope(p, tenant); err != nil {
		return err
	}
	if d == nil {
		return apiError(ErrUnavailable, codeDirectoryNotLoaded, "the directory is not loaded yet")
	}
	if _, ok := d.Tenant(tenant); !ok {
		return noTenant(tenant)
	}
	return nil
}

// scope lets p act in tenant: the operator anywhere, an admin in its own tenant only (another
// one is not found, exactly as a tenant that does not exist).
func scope(p Principal, tenant string) error {
	switch {
	case p.Role == config.RoleOperator:
		return nil
	case p.Role == config.RoleAdmin && p.Tenant == tenant:
		return nil
	case p.Role == config.RoleAdmin:
		return noTenant(tenant)
	default:
		return apiError(ErrForbidden, "forbidden", "an API key with role "+p.Role.String()+" may not administer the directory")
	}
}

// operatorOnly refuses anyone but the operator what (naming the request field, when one asks
// for it).
func operatorOnly(p Principal, what, field string) error {
	if p.Role == config.RoleOperator {
		return nil
	}
	e := apiError(ErrForbidden, codeOperatorOnly, what+" is the operator's, not a tenant admin's")
	e.Field = field
	return e
}

func noTenant(id string) error {
	return apiError(ErrNotFound, codeNoSuchTenant, fmt.Sprintf("no tenant %q", id))
}

// editor names who changed the directory (the store's UpdatedBy).
func editor(p Principal) string {
	if p.Role == config.RoleOperator {
		return "operator:" + p.KeyName
	}
	return "key:" + p.KeyName + "@" + p.Tenant
}

// ---- resources

// resource is one thing of a tenant that the API reads and changes as a whole.
type resource struct {
	kind   string // error codes (<kind>_exists) and messages
	what   string // for messages: extension "744"
	target string // the audit entry's target
	// parent, when set, fails (not found) when what holds the resource is missing.
	parent func(t *config.Tenant) error
	// view is the resource in t; false when it does not exist there.
	view func(t *config.Tenant) (any, bool)
}

func notFound(r resource) error {
	return apiError(ErrNotFound, "not_found", "no "+r.what)
}

func always[T any](f func(t *config.Tenant) T) func(t *config.Tenant) (any, bool) {
	return func(t *config.Tenant) (any, bool) { return f(t), true }
}

func tenantRes(id string) resource {
	return resource{kind: "tenant", what: fmt.Sprintf("tenant %q", id), target: id,
		view: always(func(t *config.Tenant) TenantView { return tenantView(t) })}
}

func extensionsRes() resource {
	return resource{kind: "extensions", what: "extensions", view: always(func(t *config.Tenant) ExtensionList {
		l := ExtensionList{Extensions: []ExtensionView{}}
		for _, e := range t.Extensions {
			l.Extensions = append(l.Extensions, extensionView(e))
		}
		return l
	})}
}

func extensionIndex(t *config.Tenant, number string) int {
	return slices.IndexFunc(t.Extensions, func(e config.Extension) bool { return e.Number == number })
}

func extensionRes(number string) resource {
	return resource{kind: "extension", what: fmt.Sprintf("extension %q", number), target: number,
		view: func(t *config.Tenant) (any, bool) {
			if i := extensionIndex(t, number); i >= 0 {
				return extensionView(t.Extensions[i]), true
			}
			return nil, false
		}}
}

func huntGroupsRes() resource {
	return resource{kind: "hunt_groups", what: "hunt groups", view: always(func(t *config.Tenant) HuntGroupList {
		l := HuntGroupList{HuntGroups: []HuntGroupView{}}
		for _, g := range t.HuntGroups {
			l.HuntGroups = append(l.HuntGroups, huntGroupView(g))
		}
		return l
	})}
}

func groupIndex(t *config.Tenant, name string) int {
	return slices.IndexFunc(t.HuntGroups, func(g config.HuntGroup) bool { return g.Name == name })
}

func huntGroupRes(name string) resource {
	return resource{kind: "hunt_group", what: fmt.Sprintf("hunt group %q", name), target: name,
		view: func(t *config.Tenant) (any, bool) {
			if i := groupIndex(t, name); i >= 0 {
				return huntGroupView(t.HuntGroups[i]), true
			}
			return nil, false
		}}
}

func groupExists(name string) func(t *config.Tenant) error {
	return func(t *config.Tenant) error {
		if groupIndex(t, name) < 0 {
			return notFound(huntGroupRes(name))
		}
		return nil
	}
}

func membersRes(group string) resource {
	return resource{kind: "members", what: fmt.Sprintf("members of hunt group %q", group), parent: groupExists(group),
		view: func(t *config.Tenant) (any, bool) {
			return MemberList{Members: huntGroupView(t.HuntGroups[groupIndex(t, group)]).Members}, true
		}}
}

func memberIndex(g *config.HuntGroup, ext string) int {
	return slices.IndexFunc(g.Members, func(m config.Member) bool { return m.Extension == ext })
}

func memberRes(group, ext string) resource {
	return resource{kind: "member", what: fmt.Sprintf("member %q of hunt group %q", ext, group), target: group + "/" + ext,
		parent: groupExists(group),
		view: func(t *config.Tenant) (any, bool) {
			g := &t.HuntGroups[groupIndex(t, group)]
			if i := memberIndex(g, ext); i >= 0 {
				return MemberView(g.Members[i]), true
			}
			return nil, false
		}}
}

func dialingRulesRes(tenant string) resource {
	return resource{kind: "dialing_rules", what: "dialing rules", target: tenant,
		view: always(func(t *config.Tenant) dialplan.Rules { return t.DialingRules })}
}

func announceRes(tenant string) resource {
	return resource{kind: "announce", what: "announcement policy", target: tenant,
		view: always(func(t *config.Tenant) AnnounceView { return AnnounceView{Announce: string(t.Announce)} })}
}

func helpPolicyRes(tenant string) resource {
	return resource{kind: "help_policy", what: "help-request policy", target: tenant,
		view: always(func(t *config.Tenant) HelpPolicyView { return helpPolicyView(t.HelpRequests) })}
}

func webhooksRes() resource {
	return resource{kind: "webhooks", what: "webhooks", view: always(func(t *config.Tenant) WebhookList {
		l := WebhookList{Webhooks: []WebhookView{}}
		for _, w := range t.Webhooks {
			l.Webhooks = append(l.Webhooks, webhookView(w))
		}
		return l
	})}
}

func webhookIndex(t *config.Tenant, id string) int {
	return slices.IndexFunc(t.Webhooks, func(w config.Webhook) bool { return WebhookID(w.URL) == id })
}

func webhookRes(id string) resource {
	return resource{kind: "webhook", what: fmt.Sprintf("webhook %q", id), target: id,
		view: func(t *config.Tenant) (any, bool) {
			if i := webhookIndex(t, id); i >= 0 {
				return webhookView(t.Webhooks[i]), true
			}
			return nil, false
		}}
}

// ---- reading

// read returns r of tenant as this instance has it in force.
func (a *Admin) read(p Principal, tenant string, r resource) (Versioned[any], error) {
	if err := scope(p, tenant); err != nil {
		return Versioned[any]{}, err
	}
	d, rev := a.dir.Live().Snapshot()
	if d == nil {
		return Versioned[any]{}, apiError(ErrUnavailable, codeDirectoryNotLoaded, "the directory is not loaded yet")
	}
	t, ok := d.Tenant(tenant)
	if !ok {
		return Versioned[any]{}, noTenant(tenant)
	}
	if r.parent != nil {
		if err := r.parent(t); err != nil {
			return Versioned[any]{}, err
		}
	}
	v, ok := r.view(t)
	if !ok {
		return Versioned[any]{}, notFound(r)
	}
	return Versioned[any]{Value: v, ETag: ETag(v), Rev: rev}, nil
}

// typed narrows a Versioned[any] (the views resources make are of the type their method says).
func typed[T any](v Versioned[any], err error) (Versioned[T], error) {
	if err != nil {
		return Versioned[T]{}, err
	}
	val, _ := v.Value.(T)
	return Versioned[T]{Value: val, ETag: v.ETag, Rev: v.Rev}, nil
}

// ---- writing

// Verbs of a change.
const (
	verbCreate = "create"
	verbUpdate = "update"
	verbDelete = "delete"
)

// change is one edit of a tenant's resource.
type change struct {
	p      Principal
	tenant string
	res    resource
	verb   string
	pc     Precondition
	// apply makes the change on t (a copy the change owns).
	apply func(t *config.Tenant) error
	// after, when set, is the resource once changed (a renamed hunt group); else res.
	after *resource
	// actions, when set, names the audit entries of the change from the views before and
	// after; else one, directory_<kind>_<verb>.
	actions func(before, after any) []string
	// onCommit, when set, runs once the change validated and is audited, before it is written
	// (inside the directory's write lock): a side effect of the change, which fails it when it
	// fails. It may run again if the store retries the write.
	onCommit func() error
}

// write makes c: checks scope, existence and preconditions against the revision it replaces,
// applies it, validates the whole directory, audits, writes. It answers the resource as it is
// after the change (nil once deleted), with its tag and the new revision.
func (a *Admin) write(ctx context.Context, c change) (Versioned[any], error) {
	if err := scope(c.p, c.tenant); err != nil {
		return Versioned[any]{}, err
	}
	after := c.res
	if c.after != nil {
		after = *c.after
	}
	var (
		before    any
		existed   bool
		result    any
		committed bool
	)
	rev, err := a.dir.Edit(ctx, editor(c.p), func(cur []config.Tenant, _ int64) ([]config.Tenant, error) {
		committed = false
		i := slices.IndexFunc(cur, func(t config.Tenant) bool { return t.ID == c.tenant })
		if i < 0 {
			return nil, noTenant(c.tenant)
		}
		if c.res.parent != nil {
			if err := c.res.parent(&cur[i]); err != nil {
				return nil, err
			}
		}
		before, existed = c.res.view(&cur[i])
		switch {
		case c.verb == verbCreate && existed && !c.pc.IfNoneMatchAny:
			return nil, apiError(ErrConflict, c.res.kind+"_exists", c.res.what+" exists")
		case c.verb != verbCreate && !existed:
			return nil, notFound(c.res)
		}
		if err := c.pc.check(existed, before); err != nil {
			return nil, err
		}
		next := config.CloneTenants(cur)
		if err := c.apply(&next[i]); err != nil {
			return nil, err
		}
		if reflect.DeepEqual(next[i], cur[i]) {
			return nil, ErrNoChange
		}
		return next, nil
	}, func(d *config.Directory) error {
		result = nil
		if t, ok := d.Tenant(c.tenant); ok && c.verb != verbDelete {
			result, _ = after.view(t)
		}
		actions := []string{"directory_" + c.res.kind + "_" + c.verb}
		if c.actions != nil {
			if named := c.actions(before, result); len(named) > 0 { // never a change without an entry
				actions = named
			}
		}
		var was any
		if existed {
			was = before
		}
		for _, action := range actions {
			if err := a.record(ctx, c.p, c.tenant, action, c.res.target, was, result); err != nil {
				return err
			}
		}
		if c.onCommit != nil {
			if err := c.onCommit(); err != nil {
				return err
			}
		}
		committed = true
		return nil
	})
	if err != nil {
		return Versioned[any]{}, a.editError(c.p, c.tenant, err)
	}
	if !committed { // nothing to change: the resource as it is
		result = before
	}
	if result == nil {
		return Versioned[any]{Rev: rev}, nil
	}
	return Versioned[any]{Value: result, ETag: ETag(result), Rev: rev}, nil
}

// record audits action of p on target in tenant, with the resource before and after (views,
// which carry no secret); nil stands for "did not exist".
func (a *Admin) record(ctx context.Context, p Principal, tenant, action, target string, before, after any) error {
	extra := map[string]string{}
	for k, v := range map[string]any{"before": before, "after": after} {
		if v == nil {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
		extra[k] = string(b)
	}
	p.Tenant = tenant // the operator acts in the tenant it changes: the entry is that tenant's
	return a.audit.AuditAdmin(ctx, p, action, target, extra)
}

// editError turns what Edit returned into the API's error.
func (a *Admin) editError(p Principal, tenant string, err error) error {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, ErrInvalidDirectory):
		return a.invalid(p, tenant, err)
	case errors.Is(err, store.ErrConflict):
		return apiFailure(ErrUnavailable, codeDirectoryBusy, "another change of the directory is in progress; retry", err)
	default:
		return apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the directory is unavailable", err)
	}
}

// fieldNames are the directory fields a validation message may start with: the field at fault
// is then where.name (tenants[acme].dialing_rules.spy_prefix).
var fieldNames = map[string]bool{
	"id": true, "name": true, "number": true, "endpoint": true, "role": true, "extension": true,
	"supervision_allowed": true, "url": true, "secret": true, "secret_env": true, "sha256": true,
	"signing_secret": true, "escalate_after": true, "expire_after": true,
	"spy_prefix": true, "whisper_prefix": true, "barge_prefix": true, "spy_dtmf": true,
	"whisper_dtmf": true, "barge_dtmf": true, "help_accept_code": true, "help_raise_dtmf": true,
}

// problemField is the field a validation problem at where with message msg is about: where,
// made finer by the field name msg starts with, if any.
func problemField(where, msg string) string {
	end := strings.IndexFunc(msg, func(r rune) bool { return !('a' <= r && r <= 'z' || r == '_') })
	if end <= 0 || msg[end] != ' ' && msg[end] != ':' {
		return where
	}
	name := msg[:end]
	if !fieldNames[name] || strings.HasSuffix(where, "."+name) {
		return where
	}
	return where + "." + name
}

// invalid is the 422 of a change that leaves the directory invalid, listing each problem with
// the field at fault. A tenant admin is shown its own tenant's problems only, other tenants
// named as "another tenant": a clash with another tenant (an endpoint is one device, whoever
// lists it) is shown at the admin's field, and a problem of other tenants alone (an
// environment this instance lacks) as a fixed message, the details going to the log.
func (a *Admin) invalid(p Principal, tenant string, err error) error {
	own := "tenants[" + tenant + "]"
	inOwn := func(field string) bool {
		return field == own || strings.HasPrefix(field, own+".")
	}
	var fields []FieldProblem
	hidden := 0
	for _, fe := range config.FieldErrors(err) {
		field, msg := fe.Field, fe.Err.Error()
		if p.Role != config.RoleOperator {
			switch {
			case inOwn(field):
			case fe.Conflict != "" && inOwn(fe.Conflict):
				// Reported at the other tenant's use of the value: the admin's is the other.
				field = fe.Conflict
			default:
				hidden++
				continue
			}
			if fe.Conflict != "" && !(inOwn(fe.Field) && inOwn(fe.Conflict)) {
				// The message names the first use; one of the two is another tenant's.
				msg = strings.ReplaceAll(msg, fe.Conflict, "another tenant")
			}
		}
		fields = append(fields, FieldProblem{Field: problemField(field, msg), Message: msg})
	}
	if len(fields) == 0 {
		a.log.Warn().Err(err).Str("tenant", tenant).Msg("directory change refused for problems outside the tenant")
		msg := "the directory has a problem outside this tenant; the operator must fix it"
		if p.Role == config.RoleOperator {
			msg = "the change leaves the directory invalid: " + err.Error()
		}
		return apiError(ErrInvalid, codeInvalidDirectory, msg)
	}
	if hidden > 0 {
		a.log.Warn().Err(err).Str("tenant", tenant).Int("hidden", hidden).Msg("directory change refused; problems outside the tenant not shown")
	}
	msg := "the change leaves the directory invalid: " + fields[0].Field + ": " + fields[0].Message
	if len(fields) > 1 {
		msg += fmt.Sprintf(" (and %d more, see fields)", len(fields)-1)
	}
	e := apiError(ErrInvalid, codeInvalidDirectory, msg)
	e.Field, e.Fields = fields[0].Field, fields
	return e
}

// ---- tenants

// Tenants lists the tenants: every one for the operator, its own for an admin.
func (a *Admin) Tenants(_ context.Context, p Principal) (Versioned[TenantList], error) {
	if p.Role != config.RoleOperator && p.Role != config.RoleAdmin {
		return Versioned[TenantList]{}, scope(p, "")
	}
	d, rev := a.dir.Live().Snapshot()
	if d == nil {
		return Versioned[TenantList]{}, apiError(ErrUnavailable, codeDirectoryNotLoaded, "the directory is not loaded yet")
	}
	l := TenantList{Tenants: []TenantView{}}
	for _, t := range d.Tenants() {
		if p.Role == config.RoleOperator || t.ID == p.Tenant {
			l.Tenants = append(l.Tenants, tenantView(t))
		}
	}
	return Versioned[TenantList]{Value: l, ETag: ETag(l), Rev: rev}, nil
}

// Tenant reads a tenant's own settings.
func (a *Admin) Tenant(_ context.Context, p Principal, id string) (Versioned[TenantView], error) {
	return typed[TenantView](a.read(p, id, tenantRes(id)))
}

// CreateTenant creates a tenant (the operator's): no extensions yet, default rules and
// policies, supervision as asked (off by default). 409 tenant_exists (412 with If-None-Match:
// *) when the id is taken.
func (a *Admin) CreateTenant(ctx context.Context, p Principal, req TenantCreate, pc Precondition) (Versioned[TenantView], error) {
	if err := operatorOnly(p, "creating a tenant", ""); err != nil {
		return Versioned[TenantView]{}, err
	}
	var created TenantView
	rev, err := a.dir.Edit(ctx, editor(p), func(cur []config.Tenant, _ int64) ([]config.Tenant, error) {
		exists := slices.ContainsFunc(cur, func(t config.Tenant) bool { return t.ID == req.ID })
		if exists && !pc.IfNoneMatchAny {
			return nil, apiError(ErrConflict, "tenant_exists", fmt.Sprintf("tenant %q exists", req.ID))
		}
		if err := pc.check(exists, nil); err != nil {
			return nil, err
		}
		t := config.Tenant{
			ID: req.ID, Name: req.Name, SupervisionEnabled: req.SupervisionEnabled, Endpoints: endpoints(req.Endpoints),
			Announce: config.AnnounceNone, RequestSignatures: config.SignaturesOptional,
			DialingRules: dialplan.DefaultRules(),
			HelpRequests: config.HelpPolicy{EscalateAfter: config.DefaultHelpEscalateAfter, ExpireAfter: config.DefaultHelpExpireAfter},
		}
		return append(config.CloneTenants(cur), t), nil
	}, func(d *config.Directory) error {
		t, _ := d.Tenant(req.ID)
		// Keys of an earlier tenant of this id must not come back to life with this one.
		if err := a.revokeKeys(ctx, req.ID); err != nil {
			return apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
		}
		created = tenantView(t)
		return a.record(ctx, p, req.ID, AuditTenantCreate, req.ID, nil, exportTenant(t))
	})
	if err != nil {
		return Versioned[TenantView]{}, a.editError(p, req.ID, err)
	}
	return Versioned[TenantView]{Value: created, ETag: ETag(created), Rev: rev}, nil
}

// UpdateTenant renames a tenant, or (the operator only) switches its supervision on or off
// (audited as tenant_supervision_on, tenant_supervision_off) or replaces its endpoints (audited
// as directory_tenant_update).
func (a *Admin) UpdateTenant(ctx context.Context, p Principal, id string, req TenantPatch, pc Precondition) (Versioned[TenantView], error) {
	if err := scope(p, id); err != nil {
		return Versioned[TenantView]{}, err
	}
	if req.SupervisionEnabled != nil {
		if err := operatorOnly(p, "switching supervision on and off", "supervision_enabled"); err != nil {
			return Versioned[TenantView]{}, err
		}
	}
	if req.Endpoints != nil {
		if err := operatorOnly(p, "giving a tenant its endpoints", "endpoints"); err != nil {
			return Versioned[TenantView]{}, err
		}
	}
	return typed[TenantView](a.write(ctx, change{p: p, tenant: id, res: tenantRes(id), verb: verbUpdate, pc: pc,
		apply: func(t *config.Tenant) error {
			if req.Name != nil {
				t.Name = *req.Name
			}
			if req.SupervisionEnabled != nil {
				t.SupervisionEnabled = *req.SupervisionEnabled
			}
			if req.Endpoints != nil {
				t.Endpoints = endpoints(*req.Endpoints)
			}
			return nil
		},
		actions: func(before, after any) []string {
			b, _ := before.(TenantView)
			n, _ := after.(TenantView)
			var out []string
			if b.SupervisionEnabled != n.SupervisionEnabled {
				out = append(out, map[bool]string{true: AuditSupervisionOn, false: AuditSupervisionOff}[n.SupervisionEnabled])
			}
			if b.Name != n.Name || !slices.Equal(b.Endpoints, n.Endpoints) {
				out = append(out, AuditTenantUpdate)
			}
			return out
		},
	}))
}

// DeleteTenant deletes a tenant (the operator's); 409 tenant_busy while it has supervisions
// in progress. Its API keys created through the API are revoked after it is gone.
func (a *Admin) DeleteTenant(ctx context.Context, p Principal, id string, pc Precondition) (int64, error) {
	if err := scope(p, id); err != nil {
		return 0, err
	}
	if err := operatorOnly(p, "deleting a tenant", ""); err != nil {
		return 0, err
	}
	var gone tenantExport
	rev, err := a.dir.Edit(ctx, editor(p), func(cur []config.Tenant, _ int64) ([]config.Tenant, error) {
		i := slices.IndexFunc(cur, func(t config.Tenant) bool { return t.ID == id })
		if i < 0 {
			return nil, noTenant(id)
		}
		if err := pc.check(true, tenantView(&cur[i])); err != nil {
			return nil, err
		}
		sessions, err := a.st.ListSessions(ctx, id)
		if err != nil {
			return nil, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
		}
		live := 0
		for _, s := range sessions {
			if s.Live() {
				live++
			}
		}
		if live > 0 {
			return nil, apiError(ErrConflict, codeTenantBusy, fmt.Sprintf(
				"tenant %q has %d supervisions in progress: switch its supervision off, let them end, then delete it", id, live))
		}
		gone = exportTenant(&cur[i])
		next := config.CloneTenants(cur)
		return slices.Delete(next, i, i+1), nil
	}, func(*config.Directory) error {
		return a.record(ctx, p, id, AuditTenantDelete, id, gone, nil)
	})
	if err != nil {
		return 0, a.editError(p, id, err)
	}
	if err := a.revokeKeys(ctx, id); err != nil {
		// Harmless meanwhile (a key of an unknown tenant authenticates nobody), and done
		// again when a tenant of this id is created.
		a.log.Warn().Err(err).Str("tenant", id).Msg("api keys of the deleted tenant not all revoked")
	}
	return rev, nil
}

// revokeKeys revokes every API key of tenant created through the API.
func (a *Admin) revokeKeys(ctx context.Context, tenant string) error {
	keys, err := a.st.APIKeys(ctx, tenant)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := a.st.RevokeAPIKey(ctx, tenant, k.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// ---- extensions

// Extensions lists the tenant's extensions.
func (a *Admin) Extensions(_ context.Context, p Principal, tenant string) (Versioned[ExtensionList], error) {
	return typed[ExtensionList](a.read(p, tenant, extensionsRes()))
}

// Extension reads one extension.
func (a *Admin) Extension(_ context.Context, p Principal, tenant, number string) (Versioned[ExtensionView], error) {
	return typed[ExtensionView](a.read(p, tenant, extensionRes(number)))
}

// endpoints is a tenant's endpoints as the directory keeps them: none is nil (the document then
// has no endpoints field, as before they existed).
func endpoints(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return slices.Clone(l)
}

// chooseEndpoint refuses p choosing an extension's endpoint in t unless p is the operator or the
// operator gave t endpoints (which validation then holds the choice to).
func chooseEndpoint(p Principal, t *config.Tenant) error {
	if len(t.Endpoints) > 0 {
		return nil
	}
	return operatorOnly(p, "choosing an extension's endpoint in a tenant without endpoints", "endpoint")
}

// CreateExtension adds an extension (role agent unless given). In a tenant without endpoints,
// the operator's alone (403 operator_only). API keys left over from an earlier extension of the
// number are revoked.
func (a *Admin) CreateExtension(ctx context.Context, p Principal, tenant string, req ExtensionView, pc Precondition) (Versioned[ExtensionView], error) {
	return typed[ExtensionView](a.write(ctx, change{p: p, tenant: tenant, res: extensionRes(req.Number), verb: verbCreate, pc: pc,
		onCommit: func() error { return a.revokeExtensionKeys(ctx, p, tenant, req.Number) },
		apply: func(t *config.Tenant) error {
			if err := chooseEndpoint(p, t); err != nil {
				return err
			}
			role := config.RoleAgent
			if req.Role != "" {
				_ = role.UnmarshalText([]byte(req.Role)) // never fails; Validate judges the role
			}
			t.Extensions = append(t.Extensions, config.Extension{Number: req.Number, Endpoint: req.Endpoint, Name: req.Name, Role: role})
			return nil
		}}))
}

// UpdateExtension changes an extension's endpoint, name or role. Changing the endpoint in a
// tenant without endpoints is the operator's alone (403 operator_only).
func (a *Admin) UpdateExtension(ctx context.Context, p Principal, tenant, number string, req ExtensionPatch, pc Precondition) (Versioned[ExtensionView], error) {
	return typed[ExtensionView](a.write(ctx, change{p: p, tenant: tenant, res: extensionRes(number), verb: verbUpdate, pc: pc,
		apply: func(t *config.Tenant) error {
			e := &t.Extensions[extensionIndex(t, number)]
			if req.Endpoint != nil && *req.Endpoint != e.Endpoint {
				if err := chooseEndpoint(p, t); err != nil {
					return err
				}
				e.Endpoint = *req.Endpoint
			}
			if req.Name != nil {
				e.Name = *req.Name
			}
			if req.Role != nil {
				_ = e.Role.UnmarshalText([]byte(*req.Role))
			}
			return nil
		}}))
}

// DeleteExtension removes an extension; 409 extension_in_use while hunt groups list it. The API
// keys created through the API that act as it are revoked (each audited) before it is gone.
func (a *Admin) DeleteExtension(ctx context.Context, p Principal, tenant, number string, pc Precondition) (int64, error) {
	v, err := a.write(ctx, change{p: p, tenant: tenant, res: extensionRes(number), verb: verbDelete, pc: pc,
		onCommit: func() error { return a.revokeExtensionKeys(ctx, p, tenant, number) },
		apply: func(t *config.Tenant) error {
			var uses []FieldProblem
			for _, g := range t.HuntGroups {
				if j := memberIndex(&g, number); j >= 0 {
					uses = append(uses, FieldProblem{
						Field:   fmt.Sprintf("tenants[%s].hunt_groups[%s].members[%d]", t.ID, g.Name, j),
						Message: fmt.Sprintf("extension %q is a member of hunt group %q", number, g.Name),
					})
				}
			}
			if len(uses) > 0 {
				e := apiError(ErrConflict, codeExtensionInUse, fmt.Sprintf(
					"extension %q is a member of %d hunt groups: remove it from them first", number, len(uses)))
				e.Field, e.Fields = uses[0].Field, uses
				return e
			}
			t.Extensions = slices.Delete(t.Extensions, extensionIndex(t, number), extensionIndex(t, number)+1)
			return nil
		}})
	return v.Rev, err
}

// revokeExtensionKeys revokes the API keys of tenant created through the API that act as
// extension number, each audited (api_key_revoke, by p) before it goes: an extension removed
// leaves no key that a new extension of that number would bring back to life.
func (a *Admin) revokeExtensionKeys(ctx context.Context, p Principal, tenant, number string) error {
	keys, err := a.st.APIKeys(ctx, tenant)
	if err != nil {
		return apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
	}
	p.Tenant = tenant // the operator acts in the tenant it changes: the entry is that tenant's
	for _, k := range keys {
		if k.Extension != number {
			continue
		}
		if err := a.audit.AuditAdmin(ctx, p, AuditAPIKeyRevoke, k.Name,
			map[string]string{"extension": number, "role": k.Role, "reason": "extension_removed"}); err != nil {
			return err
		}
		if _, err := a.st.RevokeAPIKey(ctx, tenant, k.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
		}
		a.log.Info().Str("tenant", tenant).Str("key_name", k.Name).Str("extension", number).
			Msg("api key of a removed extension revoked")
	}
	return nil
}

// ---- hunt groups and members

// HuntGroups lists the tenant's hunt groups with their members.
func (a *Admin) HuntGroups(_ context.Context, p Principal, tenant string) (Versioned[HuntGroupList], error) {
	return typed[HuntGroupList](a.read(p, tenant, huntGroupsRes()))
}

// HuntGroup reads one hunt group.
func (a *Admin) HuntGroup(_ context.Context, p Principal, tenant, name string) (Versioned[HuntGroupView], error) {
	return typed[HuntGroupView](a.read(p, tenant, huntGroupRes(name)))
}

// CreateHuntGroup adds a hunt group, with its first members if given.
func (a *Admin) CreateHuntGroup(ctx context.Context, p Principal, tenant string, req HuntGroupView, pc Precondition) (Versioned[HuntGroupView], error) {
	return typed[HuntGroupView](a.write(ctx, change{p: p, tenant: tenant, res: huntGroupRes(req.Name), verb: verbCreate, pc: pc,
		apply: func(t *config.Tenant) error {
			g := config.HuntGroup{Name: req.Name}
			for _, m := range req.Members {
				g.Members = append(g.Members, config.Member(m))
			}
			t.HuntGroups = append(t.HuntGroups, g)
			return nil
		}}))
}

// UpdateHuntGroup renames a hunt group.
func (a *Admin) UpdateHuntGroup(ctx context.Context, p Principal, tenant, name string, req HuntGroupPatch, pc Precondition) (Versioned[HuntGroupView], error) {
	after := huntGroupRes(name)
	if req.Name != nil {
		after = huntGroupRes(*req.Name)
	}
	return typed[HuntGroupView](a.write(ctx, change{p: p, tenant: tenant, res: huntGroupRes(name), verb: verbUpdate, pc: pc, after: &after,
		apply: func(t *config.Tenant) error {
			if req.Name != nil {
				t.HuntGroups[groupIndex(t, name)].Name = *req.Name
			}
			return nil
		}}))
}

// DeleteHuntGroup removes a hunt group and its memberships.
func (a *Admin) DeleteHuntGroup(ctx context.Context, p Principal, tenant, name string, pc Precondition) (int64, error) {
	v, err := a.write(ctx, change{p: p, tenant: tenant, res: huntGroupRes(name), verb: verbDelete, pc: pc,
		apply: func(t *config.Tenant) error {
			i := groupIndex(t, name)
			t.HuntGroups = slices.Delete(t.HuntGroups, i, i+1)
			return nil
		}})
	return v.Rev, err
}

// Members lists a hunt group's members.
func (a *Admin) Members(_ context.Context, p Principal, tenant, group string) (Versioned[MemberList], error) {
	return typed[MemberList](a.read(p, tenant, membersRes(group)))
}

// Member reads one membership.
func (a *Admin) Member(_ context.Context, p Principal, tenant, group, ext string) (Versioned[MemberView], error) {
	return typed[MemberView](a.read(p, tenant, memberRes(group, ext)))
}

// CreateMember adds an extension to a hunt group.
func (a *Admin) CreateMember(ctx context.Context, p Principal, tenant, group string, req MemberView, pc Precondition) (Versioned[MemberView], error) {
	return typed[MemberView](a.write(ctx, change{p: p, tenant: tenant, res: memberRes(group, req.Extension), verb: verbCreate, pc: pc,
		apply: func(t *config.Tenant) error {
			g := &t.HuntGroups[groupIndex(t, group)]
			g.Members = append(g.Members, config.Member(req))
			return nil
		}}))
}

// UpdateMember switches a member's supervision_allowed.
func (a *Admin) UpdateMember(ctx context.Context, p Principal, tenant, group, ext string, req MemberPatch, pc Precondition) (Versioned[MemberView], error) {
	return typed[MemberView](a.write(ctx, change{p: p, tenant: tenant, res: memberRes(group, ext), verb: verbUpdate, pc: pc,
		apply: func(t *config.Tenant) error {
			if req.SupervisionAllowed != nil {
				g := &t.HuntGroups[groupIndex(t, group)]
				g.Members[memberIndex(g, ext)].SupervisionAllowed = *req.SupervisionAllowed
			}
			return nil
		}}))
}

// DeleteMember removes an extension from a hunt group.
func (a *Admin) DeleteMember(ctx context.Context, p Principal, tenant, group, ext string, pc Precondition) (int64, error) {
	v, err := a.write(ctx, change{p: p, tenant: tenant, res: memberRes(group, ext), verb: verbDelete, pc: pc,
		apply: func(t *config.Tenant) error {
			g := &t.HuntGroups[groupIndex(t, group)]
			j := memberIndex(g, ext)
			g.Members = slices.Delete(g.Members, j, j+1)
			return nil
		}})
	return v.Rev, err
}

// ---- rules and policies

// DialingRules reads the tenant's dialing rules (the configuration's dialing_rules).
func (a *Admin) DialingRules(_ context.Context, p Principal, tenant string) (Versioned[dialplan.Rules], error) {
	return typed[dialplan.Rules](a.read(p, tenant, dialingRulesRes(tenant)))
}

// SetDialingRules replaces the tenant's dialing rules; an empty field takes its default.
func (a *Admin) SetDialingRules(ctx context.Context, p Principal, tenant string, rules dialplan.Rules, pc Precondition) (Versioned[dialplan.Rules], error) {
	return typed[dialplan.Rules](a.write(ctx, change{p: p, tenant: tenant, res: dialingRulesRes(tenant), verb: verbUpdate, pc: pc,
		actions: func(any, any) []string { return []string{AuditDialingRulesSet} },
		apply: func(t *config.Tenant) error {
			t.DialingRules = rules.WithDefaults()
			return nil
		}}))
}

// Announce reads the tenant's announcement policy.
func (a *Admin) Announce(_ context.Context, p Principal, tenant string) (Versioned[AnnounceView], error) {
	return typed[AnnounceView](a.read(p, tenant, announceRes(tenant)))
}

// SetAnnounce sets the tenant's announcement policy (none when empty).
func (a *Admin) SetAnnounce(ctx context.Context, p Principal, tenant string, req AnnounceView, pc Precondition) (Versioned[AnnounceView], error) {
	return typed[AnnounceView](a.write(ctx, change{p: p, tenant: tenant, res: announceRes(tenant), verb: verbUpdate, pc: pc,
		actions: func(any, any) []string { return []string{AuditAnnounceSet} },
		apply: func(t *config.Tenant) error {
			t.Announce = config.AnnounceNone
			if req.Announce != "" {
				_ = t.Announce.UnmarshalText([]byte(req.Announce))
			}
			return nil
		}}))
}

// HelpPolicy reads the tenant's help-request timeouts.
func (a *Admin) HelpPolicy(_ context.Context, p Principal, tenant string) (Versioned[HelpPolicyView], error) {
	return typed[HelpPolicyView](a.read(p, tenant, helpPolicyRes(tenant)))
}

// SetHelpPolicy sets the tenant's help-request timeouts (the default for an empty field).
func (a *Admin) SetHelpPolicy(ctx context.Context, p Principal, tenant string, req HelpPolicyView, pc Precondition) (Versioned[HelpPolicyView], error) {
	if err := scope(p, tenant); err != nil {
		return Versioned[HelpPolicyView]{}, err
	}
	h, err := parseHelpPolicy(req)
	if err != nil {
		return Versioned[HelpPolicyView]{}, err
	}
	return typed[HelpPolicyView](a.write(ctx, change{p: p, tenant: tenant, res: helpPolicyRes(tenant), verb: verbUpdate, pc: pc,
		actions: func(any, any) []string { return []string{AuditHelpPolicySet} },
		apply: func(t *config.Tenant) error {
			t.HelpRequests = h
			return nil
		}}))
}

// ---- webhooks

// Webhooks lists the tenant's outbound webhook receivers (never their secrets).
func (a *Admin) Webhooks(_ context.Context, p Principal, tenant string) (Versioned[WebhookList], error) {
	return typed[WebhookList](a.read(p, tenant, webhooksRes()))
}

// Webhook reads one receiver.
func (a *Admin) Webhook(_ context.Context, p Principal, tenant, id string) (Versioned[WebhookView], error) {
	return typed[WebhookView](a.read(p, tenant, webhookRes(id)))
}

// CreateWebhook adds a receiver; its URL is unique in the tenant (409 webhook_exists). The
// secret is write-only: no answer, list or audit entry carries it.
func (a *Admin) CreateWebhook(ctx context.Context, p Principal, tenant string, req WebhookCreate, pc Precondition) (Versioned[WebhookView], error) {
	if err := scope(p, tenant); err != nil {
		return Versioned[WebhookView]{}, err
	}
	if req.SecretEnv != "" {
		if err := operatorOnly(p, "naming an environment variable of the instances", "secret_env"); err != nil {
			return Versioned[WebhookView]{}, err
		}
		if req.Secret != "" {
			e := apiError(ErrInvalid, "invalid_field", "secret_env: give secret or secret_env, not both")
			e.Field = "secret_env"
			return Versioned[WebhookView]{}, e
		}
	}
	if req.AllowLocal {
		if err := operatorOnly(p, "letting a webhook reach local addresses", "allow_local"); err != nil {
			return Versioned[WebhookView]{}, err
		}
	}
	return typed[WebhookView](a.write(ctx, change{p: p, tenant: tenant, res: webhookRes(WebhookID(req.URL)), verb: verbCreate, pc: pc,
		apply: func(t *config.Tenant) error {
			t.Webhooks = append(t.Webhooks, config.Webhook{URL: req.URL, Secret: req.Secret, SecretEnv: req.SecretEnv, AllowLocal: req.AllowLocal})
			return nil
		}}))
}

// DeleteWebhook removes a receiver.
func (a *Admin) DeleteWebhook(ctx context.Context, p Principal, tenant, id string, pc Precondition) (int64, error) {
	v, err := a.write(ctx, change{p: p, tenant: tenant, res: webhookRes(id), verb: verbDelete, pc: pc,
		apply: func(t *config.Tenant) error {
			i := webhookIndex(t, id)
			t.Webhooks = slices.Delete(t.Webhooks, i, i+1)
			return nil
		}})
	return v.Rev, err
}
