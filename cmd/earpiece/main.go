// Command earpiece is the call-supervision service: a Stasis application on Asterisk ARI with its
// state in Redis and an HTTP API.
//
//	earpiece serve          [--config FILE]   run the service
//	earpiece check-config   [--config FILE]   validate the configuration, report every problem
//	earpiece dialplan render [--config FILE] [--tenant ID] [--features]  print the extensions.conf
//	                        (--features: features.conf) snippet
//	earpiece healthcheck    [--url URL]       exit 0 when the service answers ready (containers)
//	earpiece doctor         [--config FILE]   check Asterisk and Redis for what earpiece needs, a line each
//	earpiece config import  [--config FILE] [--from FILE] [--force]  put the file's tenants in Redis
//	earpiece config export  [--config FILE]   print the directory in force (YAML, importable)
//
// The configuration file comes from --config or EARPIECE_CONFIG; addresses and secrets may be
// overridden by environment variables (see config.ApplyEnv). main only wires components.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/outbound"
	"github.com/earpiece/earpiece/store"
	"github.com/earpiece/earpiece/webhooks"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: earpiece <command> [flags]
commands:
  serve            run the service
  check-config     validate the configuration and report every problem
  dialplan render  print the extensions.conf snippet routing the tenants' codes into Stasis
  healthcheck      exit 0 when the service answers ready
  doctor           check what earpiece needs of Asterisk (ARI, version, modules, Stasis app, dialplan) and Redis
  config import    put the configuration file's tenants (the directory) in Redis
  config export    print the directory in force, as YAML that config import takes back
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(rest, stderr)
	case "check-config":
		err = checkConfig(rest, stdout)
	case "dialplan":
		if len(rest) == 0 || rest[0] != "render" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		err = renderDialplan(rest[1:], stdout)
	case "healthcheck":
		err = healthcheck(rest)
	case "doctor":
		err = doctor(rest, stdout)
	case "config":
		if len(rest) == 0 || (rest[0] != "import" && rest[0] != "export") {
			fmt.Fprint(stderr, usage)
			return 2
		}
		if rest[0] == "import" {
			err = importDirectory(rest[1:], stdout)
		} else {
			err = exportDirectory(rest[1:], stdout)
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "earpiece: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "earpiece: %v\n", err)
		return 1
	}
	return 0
}

// configFlag registers --config with EARPIECE_CONFIG as its default.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("EARPIECE_CONFIG"), "configuration file (YAML; default $EARPIECE_CONFIG)")
}

// loadConfig reads, overrides from the environment, and validates the configuration.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, errors.New("no configuration: pass --config or set EARPIECE_CONFIG")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loading config (--config=%q): %w", path, err)
	}
	cfg.ApplyEnv(os.LookupEnv)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config %q is invalid:\n%w", path, err)
	}
	return cfg, nil
}

// loadServeConfig is loadConfig plus what serve alone refuses: published sample credentials
// on a listener others can reach (config.CheckExposure). check-config runs it too, so that a
// configuration it passes is one serve starts with (no crash loop in a container).
func loadServeConfig(path string) (*config.Config, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckExposure(); err != nil {
		return nil, fmt.Errorf("config %q: %w", path, err)
	}
	return cfg, nil
}

func checkConfig(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadServeConfig(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d tenants)\n", *path, len(cfg.Tenants))
	return nil
}

func renderDialplan(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dialplan render", flag.ContinueOnError)
	path := configFlag(fs)
	only := fs.String("tenant", "", "render only this tenant")
	features := fs.Bool("features", false, "print the features.conf snippet (the agents' in-call help keys) instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *features {
		return renderFeatures(cfg, *only, *path, stdout)
	}
	// Every tenant: the file earpiece writes itself (dialplan.extensions_file), marker included.
	// One tenant: its contexts alone, to paste by hand.
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		return err
	}
	files, err := app.RenderDialplan(dir, cfg.ARI.App)
	if err != nil {
		return err
	}
	if *only == "" {
		_, err := stdout.Write(files.Extensions)
		return err
	}
	t, ok := dir.Tenant(*only)
	if !ok {
		return fmt.Errorf("no tenant %q in %s", *only, *path)
	}
	var hints []dialplan.Hint
	for _, e := range t.Extensions {
		hints = append(hints, dialplan.Hint{Exten: e.Number, Device: e.Endpoint})
	}
	return dialplan.Render(stdout, t.ID, t.DialingRules, dialplan.RenderOptions{App: cfg.ARI.App, Hints: hints})
}

// renderFeatures prints the [applicationmap] of the tenants' in-call help keys
// (asterisk-conf/features_earpiece.conf).
func renderFeatures(cfg *config.Config, only, path string, stdout io.Writer) error {
	var ts []dialplan.TenantRules
	for _, t := range cfg.Tenants {
		if only == "" || t.ID == only {
			ts = append(ts, dialplan.TenantRules{Tenant: t.ID, Rules: t.DialingRules})
		}
	}
	if len(ts) == 0 {
		return fmt.Errorf("no tenant %q in %s", only, path)
	}
	return dialplan.RenderFeatures(stdout, ts)
}

func healthcheck(args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "readiness URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", *url, resp.Status)
	}
	return nil
}

// serve runs the service until SIGINT or SIGTERM.
func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := configFlag(fs)
	level := fs.String("log-level", envOr("EARPIECE_LOG_LEVEL", "info"), "log level (debug, info, warn, error)")
	instance := fs.String("instance", envOr("EARPIECE_INSTANCE", ""), "instance name recorded on sessions (default: hostname)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lvl, err := zerolog.ParseLevel(*level)
	if err != nil {
		return fmt.Errorf("--log-level=%q: %w", *level, err)
	}
	log := zerolog.New(stderr).Level(lvl).With().Timestamp().Str("service", "earpiece").Logger()
	// go-redis logs through a package-global logger (plain text on stderr by default): route it
	// into this JSON log.
	redis.SetLogger(redisLogger{log: log.With().Str("component", "redis").Logger()})
	cfg, err := loadServeConfig(*path)
	if err != nil {
		return err
	}
	if *instance == "" {
		*instance, _ = os.Hostname()
	}
	svc, err := build(cfg, *instance, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP applies the file's tenants again, for those who keep the directory in files: a
	// file edited since its last import replaces the directory in Redis and every instance
	// puts it in force; live sessions go on.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	svc.reload = func(ctx context.Context) {
		cfg, err := loadServeConfig(*path)
		if err != nil {
			log.Error().Err(err).Msg("SIGHUP: configuration not reloaded")
			return
		}
		wrote, err := svc.sync.Import(ctx, cfg.Tenants, "file", false)
		switch {
		case err != nil:
			log.Error().Err(err).Msg("SIGHUP: directory not imported")
		case wrote:
			log.Info().Int64("rev", svc.sync.Live().Rev()).Msg("SIGHUP: directory imported from the file")
		default:
			log.Info().Msg("SIGHUP: the file's tenants are unchanged since their last import; the directory stays as it is")
		}
	}
	svc.hup = hup
	log.Info().Str("listen", cfg.HTTP.Listen).Str("ari", config.RedactURL(cfg.ARI.URL)).Str("instance", *instance).Msg("earpiece started")
	return svc.run(ctx)
}

// service is earpiece's running parts as build wires them; run starts them and stops them in
// order. Its fields are the small interfaces run needs, so that run can be tested with fakes.
type service struct {
	log   zerolog.Logger
	web   httpServer
	app   runner    // the Stasis app, fed by the ARI client's events
	ari   ariClient // the ARI events socket, and the REST client the app calls
	hub   runner    // outbound notifications: event streams and webhooks
	redis []io.Closer
	// sync is the directory in Redis and in force here; boot puts the file's tenants in
	// Redis (see app.DirectorySync for the precedence) before anything else starts.
	sync *app.DirectorySync
	boot func(ctx context.Context) error
	// hup delivers SIGHUP, on which reload applies the configuration file again.
	hup    <-chan os.Signal
	reload func(ctx context.Context)
}

// runner is a component that works until its ctx ends.
type runner interface {
	Run(ctx context.Context) error
}

// runFunc adapts a function to runner.
type runFunc func(ctx context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }

// httpServer is the HTTP edge (*webhooks.Server).
type httpServer interface {
	ListenAndServe() error
	Shutdown(ctx context.Context) error
}

// ariClient is the ARI client (*ari.Client): its events socket runs until ctx ends; its REST
// client's idle connections are closed once nothing will call Asterisk any more.
type ariClient interface {
	runner
	CloseIdleConnections()
}

// build wires the components from the configuration. It starts nothing: no connection is made
// until run.
func build(cfg *config.Config, instance string, log zerolog.Logger) (*service, error) {
	fileDir, err := config.NewDirectory(cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	rdb, edgeRDB, err := newRedisClients(cfg.Redis.URL)
	if err != nil {
		return nil, err
	}
	// A Redis that does not answer is noticed within half a second; from then on every command
	// fails at once, so joins are refused audibly at once and teardown writes go to the journal.
	health := store.NewHealth(rdb, store.HealthOptions{OnChange: func(up bool, err error) {
		if up {
			log.Info().Msg("redis answers again")
		} else {
			log.Error().Err(err).Msg("redis does not answer: joins refused at once, teardown writes journaled")
		}
	}})
	rdb.AddHook(health)
	edgeRDB.AddHook(health)
	sopts := store.Options{AuditRetention: time.Duration(cfg.Redis.AuditRetentionDays) * 24 * time.Hour,
		AuditKey: []byte(cfg.Redis.AuditKey)}
	st, edgeStore := store.New(rdb, sopts), store.New(edgeRDB, sopts)
	closeRedis := func() {
		for _, c := range []redis.UniversalClient{edgeRDB, rdb} {
			_ = c.Close()
		}
	}

	journal, err := app.OpenJournal(app.JournalOptions{Dir: cfg.Redis.JournalDir})
	if err != nil {
		closeRedis()
		return nil, err
	}

	client, err := ari.New(ari.Config{
		BaseURL: cfg.ARI.URL, User: cfg.ARI.User, Password: cfg.ARI.Password, App: cfg.ARI.App,
		Logger: log.With().Str("component", "ari").Logger(),
	})
	if err != nil {
		closeRedis()
		return nil, fmt.Errorf("ari client: %w", err)
	}
	registerARIStats(reg, client)

	hub, err := outbound.New(outbound.Config{
		Store:      edgeStore,
		Endpoints:  webhookEndpoints(fileDir),
		Logger:     log.With().Str("component", "outbound").Logger(),
		Registerer: reg,
		Instance:   instance, // claim tokens name the instance
	})
	if err != nil {
		closeRedis()
		return nil, fmt.Errorf("outbound webhooks: %w", err)
	}
	sync := app.NewDirectorySync(st, cfg, os.LookupEnv, log.With().Str("component", "directory").Logger())
	dir := sync.Live()
	sup := app.New(app.Config{
		AppName: cfg.ARI.App, Instance: instance,
		Logger:     log.With().Str("component", "app").Logger(),
		Registerer: reg,
		Notifier:   hub,
		// Active/standby under the node's lease: RunActive below connects the events socket
		// only while this instance is its node's active, and re-adopts the sessions of one
		// that is gone.
		Lease:       st,
		Journal:     journal,
		StoreHealth: health,
	}, client, st, dir)
	sync.Audit = sup.AuditDirectory
	// The rendered dialplan follows the directory: custom codes work on the next dial, and the
	// BLF hints follow the extensions (a no-op without dialplan.extensions_file).
	dw, err := app.NewDialplanWriter(app.DialplanWriterConfig{
		ExtensionsFile: cfg.Dialplan.ExtensionsFile,
		FeaturesFile:   cfg.Dialplan.FeaturesFile,
		AppName:        cfg.ARI.App,
		ARI:            client,
		Live:           sync.Live(),
		Logger:         log.With().Str("component", "dialplan").Logger(),
		Registerer:     reg,
	})
	if err != nil {
		closeRedis()
		return nil, fmt.Errorf("dialplan writer: %w", err)
	}
	sync.OnChange = func(ctx context.Context, d *config.Directory, rev int64) {
		if err := hub.SetEndpoints(webhookEndpoints(d)); err != nil {
			log.Error().Err(err).Int64("rev", rev).Msg("webhook endpoints of the new directory refused; the previous ones stay")
		}
		dw.OnChange(ctx, d, rev)
	}
	admin := app.NewAdmin(sync, sup, st, log.With().Str("component", "admin").Logger())
	es := cfg.HTTP.EventStreams
	web := webhooks.New(webhooks.Config{
		Listen:     cfg.HTTP.Listen,
		Gatherer:   reg,
		Registerer: reg,
		Logger:     log.With().Str("component", "http").Logger(),
		Service:    sup,
		Directory:  dir,
		Admin:      admin,
		Store:      edgeStore,
		// Zero values take the edge's defaults.
		MaxStreams: es.Max, MaxStreamsPerTenant: es.MaxPerTenant, MaxStreamsPerKey: es.MaxPerKey,
		MaxStreamLifetime: es.MaxLifetime,
		RateLimits:        cfg.HTTP.RateLimits,
		Checks: []webhooks.Check{
			{Name: "redis", Fn: st.Ping},
			// Connected, or a healthy standby (which has no socket).
			{Name: "ari", Fn: sup.ARICheck(func() bool { return client.Stats().Connected })},
		},
	})
	return &service{
		log: log,
		web: web,
		// RunActive waits as the standby until this instance holds its node's lease, then runs
		// the ARI events socket and the app; app.ErrLeaseLost (another instance took the node
		// over) ends serve with an error, to be restarted as a standby. Beside it, the Redis
		// health check; the journal is closed once the app has stopped.
		app: runFunc(func(ctx context.Context) error {
			hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
			done := make(chan struct{})
			go func() { defer close(done); health.Run(hctx) }()
			defer func() { stopHealth(); <-done; _ = journal.Close() }()
			return sup.RunActive(ctx, client)
		}),
		ari: activeRunsARI{client},
		// The hub, and beside it the dialplan writer's periodic re-check (it heals a failed
		// apply or an Asterisk restarted with an older file).
		hub: runFunc(func(ctx context.Context) error {
			done := make(chan struct{})
			go func() { defer close(done); dw.Run(ctx, 30*time.Second) }()
			err := hub.Run(ctx)
			<-done
			return err
		}),
		// Closed in this order, last of all.
		redis: []io.Closer{edgeRDB, rdb},
		sync:  sync,
		boot: func(ctx context.Context) error {
			if err := bootDirectory(ctx, sync, cfg.Tenants, log); err != nil {
				return err
			}
			// What is in force may differ from the file (API changes it did not undo).
			sync.OnChange(ctx, sync.Live().Current(), sync.Live().Rev())
			return nil
		},
	}, nil
}

// bootDirectory imports the file's tenants (when Redis has no directory, or they changed since
// their last import) and loads the directory in force, retrying while Redis is unreachable:
// nothing can be authorised without it.
func bootDirectory(ctx context.Context, sync *app.DirectorySync, tenants []config.Tenant, log zerolog.Logger) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		wrote, err := sync.Import(ctx, tenants, "file", false)
		if err == nil {
			if wrote {
				log.Info().Int64("rev", sync.Live().Rev()).Msg("directory imported from the configuration file")
			} else {
				log.Info().Int64("rev", sync.Live().Rev()).Msg("directory loaded from Redis (the file's tenants are unchanged since their last import)")
			}
			return nil
		}
		if errors.Is(err, app.ErrInvalidDirectory) {
			return err
		}
		log.Warn().Err(err).Dur("retry_in", wait).Msg("directory not loaded yet")
		select {
		case <-ctx.Done():
			return fmt.Errorf("loading the directory: %w", err)
		case <-time.After(wait):
		}
	}
}

// run starts the components and waits for ctx (SIGINT, SIGTERM), or for the HTTP server or the
// app to stop by themselves; then it stops everything in order and returns why it stopped (nil
// for ctx, else the error of the component that stopped first).
func (s *service) run(ctx context.Context) error {
	if s.boot != nil {
		if err := s.boot(ctx); err != nil {
			s.closeRedis()
			return err
		}
	}
	syncCtx, stopSync := context.WithCancel(context.Background())
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		if s.sync != nil {
			s.sync.Run(syncCtx)
		}
	}()
	hupCtx, stopHup := context.WithCancel(context.Background())
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		for {
			select {
			case <-hupCtx.Done():
				return
			case <-s.hup:
				if s.reload != nil {
					s.reload(hupCtx)
				}
			}
		}
	}()
	// Each component runs under a context of its own, so the shutdown order below, not ctx,
	// decides when it stops.
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	ariCtx, stopARI := context.WithCancel(context.Background())
	defer stopARI()
	appCtx, stopApp := context.WithCancel(context.Background())
	defer stopApp()
	hubDone := goRun(func() error { return s.hub.Run(hubCtx) })
	ariDone := goRun(func() error { return s.ari.Run(ariCtx) })
	appDone := goRun(func() error { return s.app.Run(appCtx) })
	httpDone := goRun(s.web.ListenAndServe)

	var runErr error
	// A component that returned first: its result is taken, do not wait for it again.
	appStopped, httpStopped := false, false
	select {
	case <-ctx.Done():
	case runErr = <-httpDone:
		httpStopped = true
	case runErr = <-appDone:
		appStopped = true
	}
	s.log.Info().AnErr("cause", runErr).Msg("shutting down")

	// Shutdown order:
	// 1. Stop HTTP first (it also ends the event streams): no new API work starts while
	//    sessions are being ended.
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := s.web.Shutdown(hctx); err != nil {
		s.log.Warn().Err(err).Msg("http shutdown")
	}
	cancel()
	if !httpStopped {
		<-httpDone // ListenAndServe returns as soon as Shutdown starts
	}
	// 2. Stop the app: it takes no new Stasis work and ends its sessions (each teardown runs
	//    under its own timeout), which still needs the ARI client and Redis.
	stopApp()
	if !appStopped {
		// Bounded: a stop that hangs must not outlast compose's stop grace and end in SIGKILL
		// half-way through the steps below. What the app had not finished is not lost: the
		// journal and the outbox hold the writes, and the next start adopts the sessions.
		select {
		case <-appDone:
		case <-time.After(appStopTimeout):
			s.log.Error().Dur("after", appStopTimeout).Msg("the app did not stop in time; stopping the rest")
		}
	}
	// 3. Close the ARI socket: nothing is left to receive events for. Then close the REST
	//    client's idle connections: the app made its last call in step 2.
	stopARI()
	<-ariDone
	s.ari.CloseIdleConnections()
	// 4. Stop the notification hub: it writes what it still holds in memory (the sessions' last
	//    notifications) to the Redis outbox and lets attempts in progress finish within
	//    outbound.DefaultDrainTimeout; whatever is not delivered stays in the outbox for the next
	//    start or another instance.
	stopHub()
	<-hubDone
	// 5. Stop following the directory (and SIGHUP): nothing decides with it any more.
	stopHup()
	<-hupDone
	stopSync()
	<-syncDone
	// 6. Close Redis last: teardown, audit and notification writes above needed it.
	s.closeRedis()
	s.log.Info().Msg("stopped")
	return runErr
}

func (s *service) closeRedis() {
	for _, c := range s.redis {
		if err := c.Close(); err != nil {
			s.log.Warn().Err(err).Msg("redis close")
		}
	}
}

// appStopTimeout bounds step 2 of run's shutdown (the sessions' teardowns run under their own
// shorter timeouts).
const appStopTimeout = 15 * time.Second

// goRun runs f in a goroutine; its result arrives on the returned channel.
func goRun(f func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return done
}

// webhookEndpoints lists every tenant's outbound webhook receivers.
func webhookEndpoints(d *config.Directory) []outbound.Endpoint {
	var out []outbound.Endpoint
	for _, t := range d.Tenants() {
		for _, w := range t.Webhooks {
			out = append(out, outbound.Endpoint{Tenant: t.ID, URL: w.URL, Secret: w.Secret, AllowLocal: w.AllowLocal})
		}
	}
	return out
}

// registerARIStats exports the ARI client's counters.
func registerARIStats(reg prometheus.Registerer, c *ari.Client) {
	counter := func(name, help string, f func(ari.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(c.Stats())) })
	}
	reg.MustRegister(
		counter("earpiece_ari_events_received_total", "ARI events received.", func(s ari.Stats) uint64 { return s.EventsReceived }),
		counter("earpiece_ari_events_dropped_total", "ARI events dropped because the app fell behind (each one forces a resync).", func(s ari.Stats) uint64 { return s.EventsDropped }),
		counter("earpiece_ari_events_duplicate_total", "ARI event copies dropped (an event matching several subscriptions of the app is sent once per subscription).", func(s ari.Stats) uint64 { return s.Duplicates }),
		counter("earpiece_ari_reconnects_total", "ARI events socket reconnections.", func(s ari.Stats) uint64 { return s.Reconnects }),
		counter("earpiece_ari_decode_errors_total", "ARI events that could not be decoded.", func(s ari.Stats) uint64 { return s.DecodeErrors }),
	)
}

// redisLogger writes go-redis's log lines (connection pool and reconnection notes) as warnings
// of the JSON log.
type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn().Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// activeRunsARI is the ARI client whose events socket app.RunActive runs (while the instance is
// its node's active); in run's order it only closes the REST client's idle connections.
type activeRunsARI struct{ *ari.Client }

func (activeRunsARI) Run(ctx context.Context) error { <-ctx.Done(); return nil }
