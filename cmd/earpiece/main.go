// Command earpiece is the call-supervision service: a Stasis application on Asterisk ARI with its
// state in Redis and an HTTP API.
//
//	earpiece serve          [--config FILE]   run the service
//	earpiece check-config   [--config FILE]   validate the configuration, report every problem
//	earpiece dialplan render [--config FILE] [--tenant ID]  print the extensions.conf snippet
//	earpiece healthcheck    [--url URL]       exit 0 when the service answers ready (containers)
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

func checkConfig(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	found := false
	for i, t := range cfg.Tenants {
		if *only != "" && t.ID != *only {
			continue
		}
		found = true
		if i > 0 && *only == "" {
			fmt.Fprintln(stdout)
		}
		if err := dialplan.Render(stdout, t.ID, t.DialingRules, dialplan.RenderOptions{App: cfg.ARI.App}); err != nil {
			return fmt.Errorf("tenant %s: %w", t.ID, err)
		}
	}
	if !found {
		return fmt.Errorf("no tenant %q in %s", *only, *path)
	}
	return nil
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
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		return err
	}
	if *instance == "" {
		*instance, _ = os.Hostname()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ropts, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		return fmt.Errorf("redis url: %w", err)
	}
	// Without it go-redis ignores ctx deadlines on reads and writes: a frozen Redis would hold
	// every call for its own timeout, whatever the session asked for.
	ropts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(ropts)
	st := store.New(rdb, store.Options{})

	client, err := ari.New(ari.Config{
		BaseURL: cfg.ARI.URL, User: cfg.ARI.User, Password: cfg.ARI.Password, App: cfg.ARI.App,
		Logger: log.With().Str("component", "ari").Logger(),
	})
	if err != nil {
		return fmt.Errorf("ari client: %w", err)
	}
	registerARIStats(reg, client)

	// The HTTP edge gets its own Redis client: every open event stream holds a connection while
	// it waits, and dashboards must not starve call handling of connections.
	eopts := *ropts
	eopts.PoolSize = 128
	edgeRDB := redis.NewClient(&eopts)
	edgeStore := store.New(edgeRDB, store.Options{})
	wcfg := webhooks.Config{
		Listen:    cfg.HTTP.Listen,
		Gatherer:  reg,
		Logger:    log.With().Str("component", "http").Logger(),
		Directory: dir,
		Store:     edgeStore,
		Endpoints: webhookEndpoints(cfg),
		Hub:       webhooks.HubOptions{Registerer: reg},
		Checks: []webhooks.Check{
			{Name: "redis", Fn: st.Ping},
			{Name: "ari", Fn: func(context.Context) error {
				if !client.Stats().Connected {
					return errors.New("events socket not connected")
				}
				return nil
			}},
		},
	}
	hub, err := webhooks.NewHub(wcfg)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	sup := app.New(app.Config{
		AppName: cfg.ARI.App, Instance: *instance,
		Logger:     log.With().Str("component", "app").Logger(),
		Registerer: reg,
		Notifier:   hub,
	}, client, st, dir)
	wcfg.Service = sup
	web := webhooks.New(wcfg)
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(hubCtx) }()

	// The ARI socket and the app run until ctx is cancelled; the app's context is separate so
	// the shutdown order below decides when it stops.
	ariCtx, stopARI := context.WithCancel(context.Background())
	appCtx, stopApp := context.WithCancel(context.Background())
	ariDone := make(chan error, 1)
	go func() { ariDone <- client.Run(ariCtx) }()
	appDone := make(chan error, 1)
	go func() { appDone <- sup.Run(appCtx, client.Events()) }()
	httpDone := make(chan error, 1)
	go func() { httpDone <- web.ListenAndServe() }()
	log.Info().Str("listen", cfg.HTTP.Listen).Str("ari", cfg.ARI.URL).Str("instance", *instance).Msg("earpiece started")

	var runErr error
	appStopped := false // App.Run returned first: its result is taken, do not wait for it again
	select {
	case <-ctx.Done():
	case runErr = <-httpDone:
	case runErr = <-appDone:
		appStopped = true
	}
	log.Info().AnErr("cause", runErr).Msg("shutting down")

	// Shutdown order:
	// 1. Stop HTTP first (it also ends the event streams): no new API work starts while
	//    sessions are being ended.
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := web.Shutdown(hctx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
	cancel()
	// 2. Stop the app: it takes no new Stasis work and ends its sessions (each teardown runs
	//    under its own timeout), which still needs the ARI client and Redis.
	stopApp()
	if !appStopped {
		<-appDone
	}
	// 3. Close the ARI socket: nothing is left to receive events for.
	stopARI()
	<-ariDone
	// 4. Stop the notification hub: the sessions' last notifications are queued by now;
	//    deliveries still waiting for a retry are dropped (their records say "retrying").
	stopHub()
	<-hubDone
	// 5. Close Redis last: teardown, audit and notification writes above needed it.
	for _, c := range []*redis.Client{edgeRDB, rdb} {
		if err := c.Close(); err != nil {
			log.Warn().Err(err).Msg("redis close")
		}
	}
	log.Info().Msg("stopped")
	return runErr
}

// webhookEndpoints lists every tenant's outbound webhook receivers.
func webhookEndpoints(cfg *config.Config) []webhooks.Endpoint {
	var out []webhooks.Endpoint
	for _, t := range cfg.Tenants {
		for _, w := range t.Webhooks {
			out = append(out, webhooks.Endpoint{Tenant: t.ID, URL: w.URL, Secret: w.Secret})
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
		counter("earpiece_ari_reconnects_total", "ARI events socket reconnections.", func(s ari.Stats) uint64 { return s.Reconnects }),
		counter("earpiece_ari_decode_errors_total", "ARI events that could not be decoded.", func(s ari.Stats) uint64 { return s.DecodeErrors }),
	)
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
