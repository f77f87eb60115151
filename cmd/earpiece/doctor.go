package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// `earpiece doctor` checks, against the Asterisk and the Redis the configuration names, what
// earpiece needs of them, one line a check:
//
//	ok   <check>: <what was found>
//	FAIL <check>: <what is wrong>: <what to change>
//	skip <check>: <why it could not be checked>
//
// and exits non-zero when any check fails. The checks live in checkup, which tests drive
// against a real Asterisk and a real Redis with each prerequisite broken in turn.

// doctorTimeout bounds each request of the checks.
const doctorTimeout = 5 * time.Second

// doctor runs the checks for the configuration of --config (or EARPIECE_CONFIG).
func doctor(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	client, err := ari.New(ari.Config{BaseURL: cfg.ARI.URL, User: cfg.ARI.User, Password: cfg.ARI.Password, App: cfg.ARI.App, RequestTimeout: doctorTimeout})
	if err != nil {
		return fmt.Errorf("ari client: %w", err)
	}
	defer client.CloseIdleConnections()
	rdb, err := newDoctorClient(cfg.Redis.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	ck := &checkup{cfg: cfg, ari: client, store: store.New(rdb, store.Options{}), readFile: os.ReadFile}
	if n := printChecks(stdout, ck.run(context.Background())); n > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", n)
	}
	return nil
}

// doctorARI is what the checks call of ARI (*ari.Client).
type doctorARI interface {
	AsteriskInfo(ctx context.Context) (ari.AsteriskInfo, error)
	ListModules(ctx context.Context) ([]ari.Module, error)
	GetApplication(ctx context.Context, app string) (ari.Application, error)
	GlobalVar(ctx context.Context, name string) (string, error)
}

// doctorStore is what the checks call of Redis (*store.Store).
type doctorStore interface {
	Ping(ctx context.Context) error
	ProbeWrite(ctx context.Context) error
	Directory(ctx context.Context) (store.DirectoryDoc, error)
}

// checkup runs the checks of one configuration.
type checkup struct {
	cfg      *config.Config
	ari      doctorARI
	store    doctorStore
	readFile func(string) ([]byte, error) // os.ReadFile: the dialplan file, when doctor can see it
}

// checkResult is one line of the report.
type checkResult struct {
	Name   string
	Status string // statusOK, statusFail, statusSkip
	Detail string
}

const (
	statusOK   = "ok"
	statusFail = "FAIL"
	statusSkip = "skip"
)

// minAsteriskMajor is the oldest Asterisk earpiece supports.
const minAsteriskMajor = 20

// requiredModules are the modules earpiece needs loaded, and what for. Names as
// GET /asterisk/modules lists them (verified on Asterisk 22: cmd/earpiece TestDoctorOnAsterisk).
// The phones' channel drivers are added from the directory's endpoints (chan_pjsip.so for
// PJSIP/...). What the PBX needs for its own calls (bridge_simple, codecs...) is its business.
var requiredModules = []struct{ name, why string }{
	{"res_http_websocket.so", "the ARI events WebSocket"},
	{"res_ari.so", "ARI"},
	{"res_ari_model.so", "ARI"},
	{"res_ari_events.so", "the ARI events WebSocket"},
	{"res_ari_asterisk.so", "reloading the dialplan, reading its marker"},
	{"res_ari_applications.so", "event subscriptions"},
	{"res_ari_channels.so", "channels and snoops"},
	{"res_ari_bridges.so", "the supervision bridges"},
	{"res_ari_endpoints.so", "finding an agent's call"},
	{"res_ari_playbacks.so", "tones"},
	{"res_stasis.so", "Stasis"},
	{"res_stasis_answer.so", "answering supervisors"},
	{"res_stasis_playback.so", "tones"},
	{"res_stasis_snoop.so", "listening to calls (snoop channels)"},
	{"app_stasis.so", "the feature codes' Stasis()"},
	{"bridge_softmix.so", "the supervision bridges (mixing)"},
	{"pbx_config.so", "extensions.conf and the rendered dialplan"},
	{"app_stack.so", "the agents' help-key subroutine (Gosub, Dial's b())"},
	{"app_userevent.so", "the in-call help key (UserEvent)"},
}

// run makes every check, in order: ARI (reachable, credentials), the Asterisk version, the
// modules, the Stasis application, Redis (reachable, writable), the dialplan Asterisk runs.
func (c *checkup) run(ctx context.Context) []checkResult {
	var out []checkResult
	add := func(name, status, format string, args ...any) {
		out = append(out, checkResult{Name: name, Status: status, Detail: fmt.Sprintf(format, args...)})
	}
	ariURL := config.RedactURL(c.cfg.ARI.URL)

	// ARI: reachable, and the credentials accepted.
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	info, err := c.ari.AsteriskInfo(cctx)
	cancel()
	ariOK := err == nil
	switch {
	case err == nil:
		add("ARI", statusOK, "%s accepts user %s", ariURL, c.cfg.ARI.User)
	case errors.Is(err, ari.ErrUnauthorized):
		add("ARI", statusFail, "%s refuses user %q (401): make ari.user and ari.password (EARPIECE_ARI_USER, EARPIECE_ARI_PASSWORD) those of a [%s] section of Asterisk's ari.conf (type=user, password=...), or fix that section",
			ariURL, c.cfg.ARI.User, c.cfg.ARI.User)
	case errors.Is(err, ari.ErrNotFound):
		add("ARI", statusFail, "%s answers 404 for /asterisk/info: ari.url must be Asterisk's ARI base (http://host:8088/ari), with ari.conf enabled=yes and res_ari.so and res_ari_asterisk.so loaded", ariURL)
	default:
		var ae *ari.Error
		if errors.As(err, &ae) {
			add("ARI", statusFail, "%s answers %d %s: check ari.url (EARPIECE_ARI_URL) and Asterisk's log", ariURL, ae.Status, ae.Message)
		} else {
			add("ARI", statusFail, "cannot reach %s: %v: check ari.url (EARPIECE_ARI_URL), and that Asterisk's http.conf has enabled=yes with a bindaddr and bindport earpiece can reach", ariURL, err)
		}
	}

	if ariOK {
		c.version(info, add)
		c.modules(ctx, add)
		c.application(ctx, add)
	} else {
		for _, n := range []string{"Asterisk version", "Asterisk modules", "Stasis application"} {
			add(n, statusSkip, "needs ARI")
		}
	}
	redisOK := c.redis(ctx, add)
	if ariOK {
		c.dialplan(ctx, redisOK, add)
	} else {
		add("dialplan", statusSkip, "needs ARI")
	}
	return out
}

func (c *checkup) version(info ari.AsteriskInfo, add func(name, status, format string, args ...any)) {
	const name = "Asterisk version"
	major, ok := info.MajorVersion()
	switch {
	case !ok:
		add(name, statusFail, "cannot tell Asterisk's version from %q: earpiece supports Asterisk %d and later (tested on 22)", info.Version(), minAsteriskMajor)
	case major < minAsteriskMajor:
		add(name, statusFail, "Asterisk %s: earpiece supports Asterisk %d and later (tested on 22): upgrade Asterisk", info.Version(), minAsteriskMajor)
	default:
		add(name, statusOK, "Asterisk %s (%d and later supported)", info.Version(), minAsteriskMajor)
	}
}

func (c *checkup) modules(ctx context.Context, add func(name, status, format string, args ...any)) {
	const name = "Asterisk modules"
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	mods, err := c.ari.ListModules(cctx)
	if err != nil {
		add(name, statusFail, "listing them (GET /asterisk/modules): %v", err)
		return
	}
	running := map[string]bool{}
	for _, m := range mods {
		if m.Status == ari.ModuleRunning {
			running[m.Name] = true
		}
	}
	need := append([]struct{ name, why string }(nil), requiredModules...)
	seen := map[string]bool{}
	for _, t := range c.cfg.Tenants {
		for _, e := range t.Extensions {
			tech, _, _ := strings.Cut(e.Endpoint, "/")
			mod := "chan_" + strings.ToLower(tech) + ".so"
			if tech != "" && !seen[mod] {
				seen[mod] = true
				need = append(need, struct{ name, why string }{mod, "the phones' " + tech + " endpoints"})
			}
		}
	}
	var missing []string
	for _, m := range need {
		if !running[m.name] {
			missing = append(missing, fmt.Sprintf("%s (%s)", m.name, m.why))
		}
	}
	if len(missing) > 0 {
		add(name, statusFail, "not loaded: %s: add `load => <module>` to modules.conf (and drop any noload of it), then restart Asterisk or `module load <module>`",
			strings.Join(missing, ", "))
		return
	}
	add(name, statusOK, "the %d modules earpiece uses are loaded", len(need))
}

func (c *checkup) application(ctx context.Context, add func(name, status, format string, args ...any)) {
	const name = "Stasis application"
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	_, err := c.ari.GetApplication(cctx, c.cfg.ARI.App)
	switch {
	case err == nil:
		add(name, statusOK, "%s is registered: earpiece serve is connected to this Asterisk", c.cfg.ARI.App)
	case errors.Is(err, ari.ErrNotFound):
		add(name, statusFail, "%s is not registered: earpiece serve is not running or not connected to this Asterisk (is it configured with the same ari.url and ari.app?); until it is, the feature codes answer congestion",
			c.cfg.ARI.App)
	default:
		add(name, statusFail, "GET /applications/%s: %v", c.cfg.ARI.App, err)
	}
}

var (
	redisReadOnly   = regexp.MustCompile(`\bREADONLY\b`)
	redisNoReplicas = regexp.MustCompile(`\bNOREPLICAS\b`)
	redisAuth       = regexp.MustCompile(`\b(NOAUTH|WRONGPASS)\b`)
)

// redis checks Redis and reports whether it answered (reads work).
func (c *checkup) redis(ctx context.Context, add func(name, status, format string, args ...any)) bool {
	const name = "Redis"
	u := config.RedactURL(c.cfg.Redis.URL)
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	if err := c.store.Ping(cctx); err != nil {
		msg := config.RedactError(err, c.cfg.Redis.URL)
		if redisAuth.MatchString(msg) {
			add(name, statusFail, "%s refuses the credentials (%s): put the right user and password in redis.url (EARPIECE_REDIS_URL: redis://user:password@host:6379/0)", u, msg)
		} else {
			add(name, statusFail, "cannot reach %s: %s: check redis.url (EARPIECE_REDIS_URL) and that Redis runs there", u, msg)
		}
		return false
	}
	err := c.store.ProbeWrite(cctx)
	msg := ""
	if err != nil {
		msg = config.RedactError(err, c.cfg.Redis.URL)
	}
	switch {
	case err == nil:
		add(name, statusOK, "%s answers and accepts writes", u)
	case redisReadOnly.MatchString(msg):
		add(name, statusFail, "%s is a read-only replica (%s): point redis.url (EARPIECE_REDIS_URL) at the primary", u, msg)
	case redisNoReplicas.MatchString(msg):
		add(name, statusFail, "%s refuses writes (%s): fewer replicas are connected than its min-replicas-to-write: bring the replicas back or lower min-replicas-to-write", u, msg)
	default:
		add(name, statusFail, "%s refuses a write (%s): earpiece keeps its state there and must write", u, msg)
	}
	return true
}

var markerLine = regexp.MustCompile(`(?m)^` + dialplan.MarkerVariable + `=([0-9a-f]*)\s*$`)

// dialplan compares the marker Asterisk has loaded with the rendering of the directory in force
// (Redis's; the configuration file's when Redis has none or cannot be read).
func (c *checkup) dialplan(ctx context.Context, redisOK bool, add func(name, status, format string, args ...any)) {
	const name = "dialplan"
	tenants, source, err := c.directory(ctx, redisOK)
	if err != nil {
		add(name, statusFail, "%v", err)
		return
	}
	files, err := app.RenderTenantsDialplan(tenants, c.cfg.ARI.App)
	if err != nil {
		add(name, statusFail, "rendering %s: %v", source, err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	loaded, err := c.ari.GlobalVar(cctx, dialplan.MarkerVariable)
	if err != nil {
		add(name, statusFail, "reading %s (GET /asterisk/variable): %v", dialplan.MarkerVariable, err)
		return
	}
	file := c.cfg.Dialplan.ExtensionsFile
	switch {
	case loaded == files.Marker:
		add(name, statusOK, "Asterisk runs the rendering of %s (%s=%s)", source, dialplan.MarkerVariable, loaded)
	case loaded == "" && file == "":
		add(name, statusFail, "Asterisk has no earpiece contexts loaded (%s is not set): #include extensions_earpiece.conf from extensions.conf (and features_earpiece.conf from features.conf), render them with `earpiece dialplan render` and reload, or set dialplan.extensions_file (and features_file) so that earpiece serve writes them",
			dialplan.MarkerVariable)
	case loaded == "":
		add(name, statusFail, "Asterisk has no earpiece contexts loaded (%s is not set), although earpiece serve writes %s: #include it from extensions.conf (Asterisk must read that very file: a shared volume) and `dialplan reload`",
			dialplan.MarkerVariable, file)
	default:
		add(name, statusFail, "Asterisk runs another rendering (%s=%s) than that of %s (%s): %s",
			dialplan.MarkerVariable, loaded, source, files.Marker, c.staleAdvice(file, files.Marker))
	}
}

// staleAdvice says what to do about a stale dialplan, from what the file earpiece writes holds
// (when this machine can read it).
func (c *checkup) staleAdvice(file, want string) string {
	if file == "" {
		return "render it again (`earpiece dialplan render`, and --features) and reload, or set dialplan.extensions_file so that earpiece serve keeps it up to date"
	}
	b, err := c.readFile(file)
	if err != nil {
		return fmt.Sprintf("earpiece serve writes %s (not readable here: %v): is it running with this configuration, and does Asterisk #include that very file?", file, err)
	}
	if m := markerLine.FindSubmatch(b); m != nil && string(m[1]) == want {
		return fmt.Sprintf("%s is up to date, so Asterisk does not read it (is it the file extensions.conf #includes?) or did not reload it (`module reload pbx_config.so`)", file)
	}
	return fmt.Sprintf("%s is stale too: is earpiece serve running with this configuration (it rewrites the file at every directory change)?", file)
}

// directory returns the tenants in force and says where they come from.
func (c *checkup) directory(ctx context.Context, redisOK bool) ([]*config.Tenant, string, error) {
	fromFile := func(why string) ([]*config.Tenant, string, error) {
		ts := make([]*config.Tenant, len(c.cfg.Tenants))
		for i := range c.cfg.Tenants {
			ts[i] = &c.cfg.Tenants[i]
		}
		return ts, "the configuration file's tenants (" + why + ")", nil
	}
	if !redisOK {
		return fromFile("Redis not reachable")
	}
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	doc, err := c.store.Directory(cctx)
	if errors.Is(err, store.ErrNotFound) {
		return fromFile("no directory in Redis yet; earpiece serve imports them at start")
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the directory in Redis: %v", config.RedactError(err, c.cfg.Redis.URL))
	}
	tenants, err := config.DecodeDirectory(doc.Doc)
	if err != nil {
		return nil, "", fmt.Errorf("the directory in Redis (revision %d): %v", doc.Rev, err)
	}
	ts := make([]*config.Tenant, len(tenants))
	for i := range tenants {
		ts[i] = &tenants[i]
	}
	return ts, fmt.Sprintf("the directory in Redis (revision %d)", doc.Rev), nil
}

// printChecks writes the report and returns how many checks failed.
func printChecks(w io.Writer, rs []checkResult) int {
	failed := 0
	for _, r := range rs {
		if r.Status == statusFail {
			failed++
		}
		fmt.Fprintf(w, "%-4s %s: %s\n", r.Status, r.Name, r.Detail)
	}
	return failed
}
