package ari

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Asterisk's modules and global variables (asterisk.json): what earpiece needs to put a new
// dialplan in force (reload pbx_config.so, read back the marker variable) and what
// `earpiece doctor` checks (version, loaded modules).
//
// Module names are as `module show` lists them: a loadable module with its ".so"
// ("pbx_config.so"), a built-in one without ("features", which reads features.conf). Asterisk
// answers GET /asterisk/modules/pbx_config (no ".so") with 409, not 404.

// Module is a module Asterisk has loaded (Module in asterisk.json).
type Module struct {
	Name         string `json:"name"`
	Description  string `json:"description"`
	UseCount     int    `json:"use_count"`
	Status       string `json:"status"` // "Running" when loaded and running
	SupportLevel string `json:"support_level"`
}

// ModuleRunning is Module.Status of a module that is loaded and running.
const ModuleRunning = "Running"

// ListModules lists the loaded modules (GET /asterisk/modules).
func (c *Client) ListModules(ctx context.Context) ([]Module, error) {
	var ms []Module
	err := c.do(ctx, http.MethodGet, "/asterisk/modules", nil, nil, &ms)
	return ms, err
}

// GetModule returns a loaded module (GET /asterisk/modules/{moduleName}); ErrNotFound when it
// is not loaded.
func (c *Client) GetModule(ctx context.Context, name string) (Module, error) {
	var m Module
	err := c.do(ctx, http.MethodGet, "/asterisk/modules/"+seg(name), nil, nil, &m)
	return m, err
}

// ReloadModule reloads a module (PUT /asterisk/modules/{moduleName}): it re-reads its
// configuration and returns when the reload is done. ErrNotFound: not loaded; ErrConflict: the
// module cannot reload ("Module does not support reloading"), or another reload is running
// (retry later).
func (c *Client) ReloadModule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPut, "/asterisk/modules/"+seg(name), nil, nil, nil)
}

// LoadModule loads a module (POST /asterisk/modules/{moduleName}); ErrConflict when it could not
// be loaded.
func (c *Client) LoadModule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/asterisk/modules/"+seg(name), nil, nil, nil)
}

// UnloadModule unloads a module (DELETE /asterisk/modules/{moduleName}); ErrNotFound when it is
// not loaded, ErrConflict when it could not be unloaded (in use).
func (c *Client) UnloadModule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/asterisk/modules/"+seg(name), nil, nil, nil)
}

// GlobalVar returns the value of a global variable, or of a dialplan function called without a
// channel, e.g. "DIALPLAN_EXISTS(ctx,s,1)" (GET /asterisk/variable). An unset variable is "".
func (c *Client) GlobalVar(ctx context.Context, name string) (string, error) {
	var v Variable
	err := c.do(ctx, http.MethodGet, "/asterisk/variable", url.Values{"variable": {name}}, nil, &v)
	return v.Value, err
}

// SetGlobalVar sets a global variable (POST /asterisk/variable).
func (c *Client) SetGlobalVar(ctx context.Context, name, value string) error {
	q := url.Values{"variable": {name}, "value": {value}}
	return c.do(ctx, http.MethodPost, "/asterisk/variable", q, nil, nil)
}

// Version is Asterisk's version (system.version), e.g. "22.10.1" or a distribution's
// "22.10.1+dfsg+~cs6.17.60671434-1"; "" if the system part is absent.
func (i AsteriskInfo) Version() string {
	if i.System == nil {
		return ""
	}
	return i.System.Version
}

// MajorVersion is the leading number of Version (22 for "22.10.1", 18 for "certified/18.9-cert4",
// "GIT-master-abc" gives 0), and whether there was one.
func (i AsteriskInfo) MajorVersion() (int, bool) {
	v := strings.TrimPrefix(i.Version(), "certified/")
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(v)
	}
	n, err := strconv.Atoi(v[:end])
	if err != nil {
		return 0, false
	}
	return n, true
}
