package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// Sentinel errors of the authorization rule. Test for them with errors.Is;
// the app maps them to an audible result and an audit entry.
var (
	ErrUnknownTenant    = errors.New("unknown tenant")
	ErrTenantDisabled   = errors.New("supervision is not enabled for the tenant")
	ErrUnknownExtension = errors.New("unknown extension")
	ErrNotSupervisor    = errors.New("role may not supervise")
	ErrSelf             = errors.New("cannot supervise oneself")
	ErrNotAllowed       = errors.New("no shared hunt group where the supervisor has supervision allowed")
)

// Directory answers who-is-who and who-may-supervise-whom questions for a
// validated configuration. It is immutable after NewDirectory returns, so
// any number of goroutines may use it at once; to change the configuration,
// build a new Directory and swap it in.
//
// Methods return pointers into the Directory's own copy of the tenants;
// callers must not modify what they point to.
type Directory struct {
	tenants   []*tenantEntry // configuration order
	byID      map[string]*tenantEntry
	endpoints map[string]extRef            // normalised endpoint
	keys      map[[sha256.Size]byte]keyRef // SHA-256 of the key
	operators map[[sha256.Size]byte]*OperatorKey
}

type tenantEntry struct {
	t    Tenant
	exts map[string]*Extension
	// may[supervisor][agent] is true when some hunt group has both, with
	// supervision allowed for the supervisor, and the supervisor's role may
	// supervise at all.
	may map[string]map[string]bool
}

type extRef struct {
	t   *tenantEntry
	ext *Extension
}

type keyRef struct {
	t   *tenantEntry
	key *APIKey
}

// NewDirectory validates cfg and indexes a deep copy of its tenants, so
// later changes to cfg do not affect the Directory.
func NewDirectory(cfg *Config) (*Directory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("building directory: %w", err)
	}
	d := &Directory{
		byID:      map[string]*tenantEntry{},
		endpoints: map[string]extRef{},
		keys:      map[[sha256.Size]byte]keyRef{},
		operators: map[[sha256.Size]byte]*OperatorKey{},
	}
	for i := range cfg.OperatorKeys {
		k := cfg.OperatorKeys[i] // a copy: later changes to cfg do not reach the Directory
		var sum [sha256.Size]byte
		if n, err := hex.Decode(sum[:], []byte(k.SHA256)); err != nil || n != len(sum) {
			return nil, fmt.Errorf("building directory: operator_keys[%s]: bad sha256", k.Name) // unreachable after Validate
		}
		d.operators[sum] = &k
	}
	for _, src := range cfg.Tenants {
		te := &tenantEntry{
			t:    cloneTenant(src),
			exts: map[string]*Extension{},
			may:  map[string]map[string]bool{},
		}
		d.tenants = append(d.tenants, te)
		d.byID[te.t.ID] = te
		for i := range te.t.Extensions {
			e := &te.t.Extensions[i]
			te.exts[e.Number] = e
			norm, _ := normalizeEndpoint(e.Endpoint) // validated
			d.endpoints[norm] = extRef{te, e}
		}
		for i := range te.t.APIKeys {
			k := &te.t.APIKeys[i]
			var sum [sha256.Size]byte
			if n, err := hex.Decode(sum[:], []byte(k.SHA256)); err != nil || n != len(sum) {
				// Unreachable after Validate; kept so a bad hash never
				// becomes the all-zero key.
				return nil, fmt.Errorf("building directory: tenants[%s].api_keys[%s]: bad sha256", te.t.ID, k.Name)
			}
			d.keys[sum] = keyRef{te, k}
		}
		for _, g := range te.t.HuntGroups {
			for _, sup := range g.Members {
				if !sup.SupervisionAllowed || !te.exts[sup.Extension].Role.MaySupervise() {
					continue
				}
				for _, agent := range g.Members {
					if agent.Extension == sup.Extension {
						continue
					}
					if te.may[sup.Extension] == nil {
						te.may[sup.Extension] = map[string]bool{}
					}
					te.may[sup.Extension][agent.Extension] = true
				}
			}
		}
	}
	return d, nil
}

// CloneTenants returns a deep copy of tenants, which the caller may change freely (every
// slice of a tenant is copied).
func CloneTenants(tenants []Tenant) []Tenant {
	if tenants == nil {
		return nil
	}
	out := make([]Tenant, len(tenants))
	for i, t := range tenants {
		t = cloneTenant(t)
		t.Webhooks = slices.Clone(t.Webhooks)
		out[i] = t
	}
	return out
}

func cloneTenant(t Tenant) Tenant {
	t.Endpoints = slices.Clone(t.Endpoints)
	t.Extensions = slices.Clone(t.Extensions)
	t.APIKeys = slices.Clone(t.APIKeys)
	t.HuntGroups = slices.Clone(t.HuntGroups)
	for i := range t.HuntGroups {
		t.HuntGroups[i].Members = slices.Clone(t.HuntGroups[i].Members)
	}
	return t
}

// Tenants returns every tenant in configuration order.
func (d *Directory) Tenants() []*Tenant {
	ts := make([]*Tenant, len(d.tenants))
	for i, te := range d.tenants {
		ts[i] = &te.t
	}
	return ts
}

// Tenant returns the tenant with the given id.
func (d *Directory) Tenant(id string) (*Tenant, bool) {
	te, ok := d.byID[id]
	if !ok {
		return nil, false
	}
	return &te.t, true
}

// Extension returns the extension number of tenant.
func (d *Directory) Extension(tenant, number string) (*Extension, bool) {
	te, ok := d.byID[tenant]
	if !ok {
		return nil, false
	}
	e, ok := te.exts[number]
	return e, ok
}

// TenantByEndpoint finds who a device belongs to. endpoint is TECH/resource
// as in the configuration (PJSIP/744); the technology is matched without
// regard to case, the resource exactly, as Asterisk does. It is not a
// channel name: strip the "-0000002a" suffix of PJSIP/744-0000002a first.
func (d *Directory) TenantByEndpoint(endpoint string) (*Tenant, *Extension, bool) {
	norm, ok := normalizeEndpoint(endpoint)
	if !ok {
		return nil, nil, false
	}
	ref, ok := d.endpoints[norm]
	if !ok {
		return nil, nil, false
	}
	return &ref.t.t, ref.ext, true
}

// Authenticate finds the API key whose SHA-256 is that of key (the secret a
// client presented), and its tenant. Only hashes are stored; the lookup is
// by hash, so it reveals nothing about keys the caller does not already
// hold.
func (d *Directory) Authenticate(key string) (*Tenant, *APIKey, bool) {
	if key == "" {
		return nil, nil, false
	}
	ref, ok := d.keys[sha256.Sum256([]byte(key))]
	if !ok {
		return nil, nil, false
	}
	return &ref.t.t, ref.key, true
}

// AuthenticateOperator finds the operator key whose SHA-256 is that of key, by hash as
// Authenticate does. Operator keys belong to no tenant: Authenticate never returns one.
func (d *Directory) AuthenticateOperator(key string) (*OperatorKey, bool) {
	if key == "" {
		return nil, false
	}
	k, ok := d.operators[sha256.Sum256([]byte(key))]
	return k, ok
}

// CanSupervise applies the rule of who may supervise whom to a supervisor
// (the extension dialing a feature code, or a supervisor API key's
// extension) wanting to supervise agent's calls, both extension numbers of
// tenant. It returns nil when allowed, otherwise an error naming the tenant
// and extensions and wrapping, checked in this order:
//
//   - ErrUnknownTenant;
//   - ErrTenantDisabled: supervision is not enabled for the tenant;
//   - ErrUnknownExtension: supervisor is not an extension of the tenant;
//   - ErrNotSupervisor: the supervisor's role is agent;
//   - ErrUnknownExtension: agent is not an extension of the tenant (an
//     extension of another tenant is unknown here: nothing crosses tenants);
//   - ErrSelf: supervisor and agent are the same extension;
//   - ErrNotAllowed: no hunt group has both, with supervision allowed for
//     the supervisor.
//
// Admin extensions follow the same hunt-group rule as supervisors when they
// dial feature codes; only an admin API key may bypass it, see
// CanSuperviseAsAdmin.
func (d *Directory) CanSupervise(tenant, supervisor, agent string) error {
	te, err := d.enabled(tenant)
	if err != nil {
		return err
	}
	sup, ok := te.exts[supervisor]
	if !ok {
		return fmt.Errorf("tenant %q: supervisor %q: %w", tenant, supervisor, ErrUnknownExtension)
	}
	if !sup.Role.MaySupervise() {
		return fmt.Errorf("tenant %q: supervisor %q has role %s: %w", tenant, supervisor, sup.Role, ErrNotSupervisor)
	}
	if _, ok := te.exts[agent]; !ok {
		return fmt.Errorf("tenant %q: agent %q: %w", tenant, agent, ErrUnknownExtension)
	}
	if supervisor == agent {
		return fmt.Errorf("tenant %q: extension %q: %w", tenant, supervisor, ErrSelf)
	}
	if !te.may[supervisor][agent] {
		return fmt.Errorf("tenant %q: %q supervising %q: %w", tenant, supervisor, agent, ErrNotAllowed)
	}
	return nil
}

// CanSuperviseAsAdmin is the rule for a join requested with a tenant admin
// API key, which may name any extension of its tenant as the supervisor
// (the tenant's admin acts for the whole tenant, as a customer-level manager
// does on a hosted PBX): the tenant must have supervision enabled and agent
// must be one of its extensions. Errors wrap ErrUnknownTenant,
// ErrTenantDisabled or ErrUnknownExtension.
//
// Hunt groups and roles are not consulted. The caller still resolves the
// supervisor it will call with Extension (same tenant) and should refuse a
// supervisor equal to agent (ErrSelf).
func (d *Directory) CanSuperviseAsAdmin(tenant, agent string) error {
	te, err := d.enabled(tenant)
	if err != nil {
		return err
	}
	if _, ok := te.exts[agent]; !ok {
		return fmt.Errorf("tenant %q: agent %q: %w", tenant, agent, ErrUnknownExtension)
	}
	return nil
}

func (d *Directory) enabled(tenant string) (*tenantEntry, error) {
	te, ok := d.byID[tenant]
	if !ok {
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrUnknownTenant)
	}
	if !te.t.SupervisionEnabled {
		return nil, fmt.Errorf("tenant %q: %w", tenant, ErrTenantDisabled)
	}
	return te, nil
}

// Supervisors returns, sorted, the extensions that may supervise agent's
// calls by the hunt-group rule: whom to notify when agent asks for help. It
// is empty for an unknown tenant or extension, and whether supervision is
// enabled is not considered.
func (d *Directory) Supervisors(tenant, agent string) []string {
	te, ok := d.byID[tenant]
	if !ok {
		return nil
	}
	var sups []string
	for sup, agents := range te.may {
		if agents[agent] {
			sups = append(sups, sup)
		}
	}
	slices.Sort(sups)
	return sups
}

// Supervisees returns, sorted, the extensions whose calls supervisor may
// supervise by the hunt-group rule (what a supervisor's dashboard lists).
// Whether supervision is enabled is not considered.
func (d *Directory) Supervisees(tenant, supervisor string) []string {
	te, ok := d.byID[tenant]
	if !ok {
		return nil
	}
	var agents []string
	for a := range te.may[supervisor] {
		agents = append(agents, a)
	}
	slices.Sort(agents)
	return agents
}

// SHA256Hex returns the lower-case hex SHA-256 of key, the form api_keys
// store (same as printf %s "$KEY" | sha256sum).
func SHA256Hex(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
