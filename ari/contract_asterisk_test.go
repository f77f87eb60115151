package ari_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
)

// contractModulesAndGlobals: what earpiece and `earpiece doctor` rely on of /asterisk: the
// version, module names as `module show` gives them (loadable modules with ".so", built-ins
// such as "features" without; the name without ".so" is a 409, not a 404), which modules reload,
// and global variables read and written without a channel. Reloading pbx_config.so (which
// rewrites the dialplan) and unloading modules are pinned down on Asterisks of their own: app's
// TestE2EDialplanWriter and cmd/earpiece's TestDoctorOnAsterisk.
func contractModulesAndGlobals(t *testing.T, env *contractEnv) {
	c := plainClient(t, env.ast, "contract-"+env.run+"-modules")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)

	info, err := c.AsteriskInfo(ctx)
	if err != nil {
		t.Fatalf("GET /asterisk/info: %v", err)
	}
	if major, ok := info.MajorVersion(); !ok || major < 20 {
		t.Errorf("Asterisk version %q: major %d, %v; earpiece supports 20 and later", info.Version(), major, ok)
	}
	t.Logf("Asterisk %s", info.Version())

	mods, err := c.ListModules(ctx)
	if err != nil {
		t.Fatalf("GET /asterisk/modules: %v", err)
	}
	byName := map[string]ari.Module{}
	for _, m := range mods {
		byName[m.Name] = m
	}
	for _, name := range []string{"pbx_config.so", "features", "res_ari.so", "res_stasis.so", "res_stasis_snoop.so", "bridge_softmix.so", "app_stasis.so", "chan_pjsip.so"} {
		if m, ok := byName[name]; !ok || m.Status != ari.ModuleRunning {
			t.Errorf("GET /asterisk/modules: %s is %+v (listed: %v), want status %q", name, m, ok, ari.ModuleRunning)
		}
	}
	if m, err := c.GetModule(ctx, "pbx_config.so"); err != nil || m.Name != "pbx_config.so" || m.Status != ari.ModuleRunning || m.Description == "" {
		t.Errorf("GET pbx_config.so: %+v, %v", m, err)
	}
	_, err = c.GetModule(ctx, "pbx_config")
	wantError(t, "GET of a module named without .so", err, ari.ErrConflict, http.StatusConflict, "could not be retrieved")
	_, err = c.GetModule(ctx, "no_such_module_"+env.run+".so")
	wantError(t, "GET of a module not loaded", err, ari.ErrNotFound, http.StatusNotFound, "")

	// features.conf is read by the built-in "features", which reloads (so does udptl, which no
	// test uses: reloading it disturbs nothing on this shared Asterisk). Most modules cannot.
	if err := c.ReloadModule(ctx, "udptl"); err != nil {
		t.Errorf("reload udptl: %v", err)
	}
	err = c.ReloadModule(ctx, "app_dial.so")
	wantError(t, "reload of a module without reload support", err, ari.ErrConflict, http.StatusConflict, "does not support reloading")
	err = c.ReloadModule(ctx, "no_such_module_"+env.run+".so")
	wantError(t, "reload of a module not loaded", err, ari.ErrNotFound, http.StatusNotFound, "")

	name := "EARPIECE_CONTRACT_" + strings.ToUpper(env.run)
	if v, err := c.GlobalVar(ctx, name); err != nil || v != "" {
		t.Errorf("GET an unset global: %q, %v, want \"\"", v, err)
	}
	if err := c.SetGlobalVar(ctx, name, "a value, with (all) sorts;"); err != nil {
		t.Fatalf("POST /asterisk/variable: %v", err)
	}
	t.Cleanup(func() { _ = c.SetGlobalVar(ctx, name, "") })
	if v, err := c.GlobalVar(ctx, name); err != nil || v != "a value, with (all) sorts;" {
		t.Errorf("GET the global just set: %q, %v", v, err)
	}
	_, err = c.GlobalVar(ctx, "")
	wantError(t, "GET /asterisk/variable without a name", err, ari.ErrBadRequest, http.StatusBadRequest, "")
}
