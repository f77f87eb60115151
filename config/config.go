// Package config is earpiece's configuration: how to reach Asterisk (ARI),
// Redis and where to serve HTTP, plus the tenant directory — who is who on
// the PBX (extensions and their endpoints, roles, hunt groups), each
// tenant's supervision dialing rules, and the bootstrap API keys.
//
// Life cycle, as main is expected to run it:
//
//	cfg, err := config.Load(path)   // strict YAML, then defaults
//	cfg.ApplyEnv(os.LookupEnv)      // secrets and deploy-time overrides
//	err = cfg.Validate()            // every problem at once
//	dir, err := config.NewDirectory(cfg)
//
// Only Load touches the file system; the package never reads the
// environment itself (ApplyEnv gets a lookup function). A Directory is
// immutable once built and answers the lookups and the authorization rule
// of SPEC §4 ("who may supervise whom") for concurrent callers.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/earpiece/earpiece/dialplan"
)

// Defaults applied by ApplyDefaults to empty fields.
const (
	DefaultARIURL     = "http://127.0.0.1:8088/ari"
	DefaultARIUser    = "earpiece"
	DefaultARIApp     = dialplan.DefaultApp
	DefaultRedisURL   = "redis://127.0.0.1:6379/0"
	DefaultHTTPListen = "127.0.0.1:8080"
)

// Environment variables read by ApplyEnv.
const (
	EnvARIURL      = "EARPIECE_ARI_URL"
	EnvARIUser     = "EARPIECE_ARI_USER"
	EnvARIPassword = "EARPIECE_ARI_PASSWORD"
	EnvARIApp      = "EARPIECE_ARI_APP"
	EnvRedisURL    = "EARPIECE_REDIS_URL"
	EnvHTTPListen  = "EARPIECE_HTTP_LISTEN"
)

// Config is the whole configuration file.
type Config struct {
	ARI     ARI      `yaml:"ari"`
	Redis   Redis    `yaml:"redis"`
	HTTP    HTTP     `yaml:"http"`
	Tenants []Tenant `yaml:"tenants"`
}

// ARI is how earpiece reaches Asterisk's REST interface (ari.conf, http.conf).
type ARI struct {
	// URL is the ARI base, e.g. http://127.0.0.1:8088/ari.
	URL string `yaml:"url"`
	// User and Password are an ari.conf user. Prefer passing the password
	// through EARPIECE_ARI_PASSWORD rather than writing it in the file.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// App is the Stasis application name, the one the dialplan's Stasis()
	// calls and the events WebSocket subscribes to.
	App string `yaml:"app"`
}

// Redis is where earpiece keeps its state.
type Redis struct {
	// URL is a redis:// or rediss:// URL (go-redis ParseURL syntax).
	URL string `yaml:"url"`
}

// HTTP is the API, dashboard and metrics listener.
type HTTP struct {
	// Listen is a host:port for net.Listen.
	Listen string `yaml:"listen"`
}

// Tenant is one customer of the PBX. Nothing about supervision ever crosses
// from one tenant to another.
type Tenant struct {
	// ID is the stable key: [a-z0-9_-], used in Redis keys, API paths,
	// the rendered dialplan context and Stasis arguments.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// SupervisionEnabled is the admin toggle of SPEC §4: off until enabled.
	SupervisionEnabled bool `yaml:"supervision_enabled"`
	// DialingRules are the tenant's feature codes; an absent or empty field
	// takes the default (*90/*91/*92, DTMF 0/1/2).
	DialingRules dialplan.Rules `yaml:"dialing_rules"`
	// Announce is the announcement policy when a supervisor joins.
	Announce   Announce    `yaml:"announce"`
	Extensions []Extension `yaml:"extensions"`
	HuntGroups []HuntGroup `yaml:"hunt_groups"`
	APIKeys    []APIKey    `yaml:"api_keys"`
	// Webhooks are the CRM URLs that receive the tenant's call and supervision notifications,
	// signed with their secret (Standard Webhooks headers).
	Webhooks []Webhook `yaml:"webhooks"`
}

// Webhook is one outbound notification receiver of a tenant.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret keys the HMAC-SHA256 signature; "whsec_"+base64 is decoded. Prefer SecretEnv.
	Secret string `yaml:"secret"`
	// SecretEnv names an environment variable holding the secret (applied by ApplyEnv).
	SecretEnv string `yaml:"secret_env"`
}

// Extension is a phone of a tenant.
type Extension struct {
	// Number is what people dial, and what follows a feature-code prefix:
	// 1 to 32 digits.
	Number string `yaml:"number"`
	// Endpoint is the Asterisk device, TECH/resource (e.g. PJSIP/744). It
	// identifies the tenant of a caller, so it is unique across tenants.
	Endpoint string `yaml:"endpoint"`
	Name     string `yaml:"name"`
	// Role defaults to agent.
	Role Role `yaml:"role"`
}

// HuntGroup is a set of extensions; a member with SupervisionAllowed may
// supervise the other members' calls (the seed's "Supervision allowed"
// hunt-group option).
type HuntGroup struct {
	Name    string   `yaml:"name"`
	Members []Member `yaml:"members"`
}

// Member is an extension's membership of a hunt group.
type Member struct {
	Extension          string `yaml:"extension"`
	SupervisionAllowed bool   `yaml:"supervision_allowed"`
}

// APIKey is a bootstrap API key. Only the SHA-256 of the key is stored, as
// 64 hex digits (printf %s "$KEY" | sha256sum).
type APIKey struct {
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	// Extension is the extension an agent or supervisor key acts as;
	// admin keys act for the whole tenant and leave it empty.
	Extension string `yaml:"extension"`
	SHA256    string `yaml:"sha256"`
}

// Load reads the YAML file at path strictly (an unknown field is an error,
// so a typo cannot silently disable a setting) and applies defaults. It does
// not validate: apply environment overrides, then call Validate.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loading config %q: %w", path, err)
	}
	defer f.Close()
	cfg, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("loading config %q: %w", path, err)
	}
	return cfg, nil
}

// Decode is Load for a reader: one strict YAML document, then defaults.
func Decode(r io.Reader) (*Config, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no YAML document (empty file?)")
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, errors.New("more than one YAML document")
	}
	cfg.ApplyDefaults()
	return &cfg, nil
}

// ApplyDefaults fills empty fields with their defaults: the Default*
// constants, announce none, extension role agent, and dialing rules merged
// field by field with dialplan.DefaultRules. API key roles have no default:
// a key's power must be written down.
func (c *Config) ApplyDefaults() {
	setDefault(&c.ARI.URL, DefaultARIURL)
	setDefault(&c.ARI.User, DefaultARIUser)
	setDefault(&c.ARI.App, DefaultARIApp)
	setDefault(&c.Redis.URL, DefaultRedisURL)
	setDefault(&c.HTTP.Listen, DefaultHTTPListen)
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if t.Announce == "" {
			t.Announce = AnnounceNone
		}
		t.DialingRules = t.DialingRules.WithDefaults()
		for j := range t.Extensions {
			if t.Extensions[j].Role == "" {
				t.Extensions[j].Role = RoleAgent
			}
		}
	}
}

// ApplyEnv overrides settings from the environment, read through lookup
// (pass os.LookupEnv): EARPIECE_ARI_URL, EARPIECE_ARI_USER,
// EARPIECE_ARI_PASSWORD, EARPIECE_ARI_APP, EARPIECE_REDIS_URL and
// EARPIECE_HTTP_LISTEN. A variable that is unset or empty changes nothing,
// so an unset variable interpolated by compose cannot blank a setting.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	for i := range c.Tenants {
		for j := range c.Tenants[i].Webhooks {
			w := &c.Tenants[i].Webhooks[j]
			if w.SecretEnv == "" {
				continue
			}
			if v, ok := lookup(w.SecretEnv); ok && v != "" {
				w.Secret = v
			}
		}
	}
	for _, o := range []struct {
		env string
		dst *string
	}{
		{EnvARIURL, &c.ARI.URL},
		{EnvARIUser, &c.ARI.User},
		{EnvARIPassword, &c.ARI.Password},
		{EnvARIApp, &c.ARI.App},
		{EnvRedisURL, &c.Redis.URL},
		{EnvHTTPListen, &c.HTTP.Listen},
	} {
		if v, ok := lookup(o.env); ok && v != "" {
			*o.dst = v
		}
	}
}

func setDefault(v *string, def string) {
	if *v == "" {
		*v = def
	}
}
