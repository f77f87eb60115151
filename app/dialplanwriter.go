package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
)

// The dialplan at run time. The directory changes while earpiece runs (DirectorySync), and a
// tenant's new codes must work from the next call: DialplanWriter renders every tenant's
// contexts (codes, BLF hints, the agents' help-key subroutine) and help keys into the files
// Asterisk #includes, writes those that differ, has Asterisk reload them through ARI, and waits
// until Asterisk has the new rendering loaded: the marker variable the extensions file sets
// (dialplan.MarkerVariable) reads back as the new rendering's marker.

// Modules reloaded to put the files in force: pbx_config reads extensions.conf (and what it
// #includes), the built-in "features" features.conf.
const (
	PBXConfigModule = "pbx_config.so"
	FeaturesModule  = "features"
)

// RenderDialplan renders the dialplan files of every tenant of d, in the directory's order, for
// Stasis application appName: each tenant's codes and agent subroutine, a BLF hint for each of
// its extensions (its number watching its endpoint), and its help key.
func RenderDialplan(d *config.Directory, appName string) (dialplan.Files, error) {
	return RenderTenantsDialplan(d.Tenants(), appName)
}

// RenderTenantsDialplan is RenderDialplan for tenants that were not built into a Directory
// (`earpiece doctor` renders the directory document in Redis without the secrets a Directory
// needs). Their defaults must be applied (config.DecodeDirectory does).
func RenderTenantsDialplan(tenants []*config.Tenant, appName string) (dialplan.Files, error) {
	ts := make([]dialplan.TenantDialplan, 0, len(tenants))
	for _, t := range tenants {
		hints := make([]dialplan.Hint, 0, len(t.Extensions))
		for _, e := range t.Extensions {
			hints = append(hints, dialplan.Hint{Exten: e.Number, Device: e.Endpoint})
		}
		ts = append(ts, dialplan.TenantDialplan{Tenant: t.ID, Rules: t.DialingRules, Hints: hints})
	}
	return dialplan.RenderFiles(ts, appName)
}

// DialplanARI is what DialplanWriter calls of ARI (*ari.Client).
type DialplanARI interface {
	ReloadModule(ctx context.Context, name string) error
	GlobalVar(ctx context.Context, name string) (string, error)
}

// DialplanSource is the directory in force (*config.Live, DirectorySync.Live()).
type DialplanSource interface {
	Current() *config.Directory
	Rev() int64
}

// DialplanWriterConfig configures a DialplanWriter.
type DialplanWriterConfig struct {
	// ExtensionsFile and FeaturesFile are config.Dialplan's. Empty ExtensionsFile: Apply does
	// nothing (the operator renders the files by hand). Empty FeaturesFile: only the
	// extensions file is written.
	ExtensionsFile string
	FeaturesFile   string
	// AppName is the Stasis application the codes enter (config ari.app).
	AppName string
	ARI     DialplanARI
	// Live, if set, is the directory in force: Apply renders what is in force when its turn
	// comes rather than the directory it was handed, so that two calls that cross (the
	// sync's loop and an API update, each with its revision) cannot leave the older one
	// written last.
	Live DialplanSource
	// LiveTimeout bounds the wait for Asterisk to have a new rendering loaded (2 s); Poll is
	// how often the marker is read meanwhile (10 ms).
	LiveTimeout time.Duration
	Poll        time.Duration
	Logger      zerolog.Logger
	// Registerer receives earpiece_dialplan_apply_seconds and
	// earpiece_dialplan_apply_failures_total (none registered when nil).
	Registerer prometheus.Registerer
}

// DialplanApply is what one Apply did.
type DialplanApply struct {
	Rev    int64  // the directory revision rendered
	Marker string // its rendering's marker
	// Wrote lists the files written (those whose content differed).
	Wrote []string
	// Reloaded: Asterisk did not have the rendering loaded, and was made to reload.
	Reloaded bool
	// Took is the time from the start of Apply until Asterisk had the rendering loaded, the
	// lock wait included; zero when nothing had to change.
	Took time.Duration
}

// DialplanWriter keeps the dialplan files and Asterisk in step with the directory. Apply may be
// called from several goroutines (it serialises itself) and by several instances writing the
// same files (the same directory renders the same bytes: an instance that finds them written
// and loaded does nothing).
type DialplanWriter struct {
	cfg      DialplanWriterConfig
	mu       sync.Mutex
	took     prometheus.Histogram
	failures prometheus.Counter
}

// NewDialplanWriter checks cfg and returns a writer. With no ExtensionsFile it needs no ARI.
func NewDialplanWriter(cfg DialplanWriterConfig) (*DialplanWriter, error) {
	if cfg.AppName == "" {
		cfg.AppName = dialplan.DefaultApp
	}
	if cfg.LiveTimeout <= 0 {
		cfg.LiveTimeout = 2 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	switch {
	case cfg.ExtensionsFile == "" && cfg.FeaturesFile != "":
		return nil, errors.New("dialplan writer: a features file without an extensions file")
	case cfg.ExtensionsFile != "" && cfg.ARI == nil:
		return nil, errors.New("dialplan writer: no ARI client")
	}
	w := &DialplanWriter{
		cfg: cfg,
		took: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "earpiece_dialplan_apply_seconds",
			Help:    "Time from a directory change to Asterisk running the new dialplan (render, write, reload, confirmed by the marker variable).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "earpiece_dialplan_apply_failures_total",
			Help: "Dialplan applies that failed (render, write, reload, or Asterisk not loading the new dialplan in time).",
		}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(w.took, w.failures)
	}
	return w, nil
}

// Enabled reports whether the writer writes anything (an extensions file is set).
func (w *DialplanWriter) Enabled() bool { return w.cfg.ExtensionsFile != "" }

// OnChange is Apply for DirectorySync.OnChange: it logs the outcome. It runs to the end even
// when ctx ends first (an API request whose client went away): a dialplan half applied is worse
// than a late answer. It is bounded by LiveTimeout plus the time to write the files.
func (w *DialplanWriter) OnChange(ctx context.Context, d *config.Directory, rev int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.LiveTimeout+10*time.Second)
	defer cancel()
	res, err := w.Apply(ctx, d, rev)
	switch {
	case err != nil:
		w.cfg.Logger.Error().Err(err).Int64("rev", rev).Msg("dialplan not applied: the directory's new codes may not work in Asterisk")
	case res.Reloaded:
		w.cfg.Logger.Info().Int64("rev", res.Rev).Str("marker", res.Marker).Strs("wrote", res.Wrote).
			Dur("took", res.Took).Msg("dialplan live")
	}
}

// Run applies the directory in force (Live) again every interval (30 s when zero) until ctx
// ends, so that Asterisk is brought back in step when an Apply failed (Asterisk down or
// restarting at the time) or it lost the rendering since (restarted with an older copy of the
// file, a `dialplan reload` of another one). When all is in step an Apply is one
// GET /asterisk/variable and reading the files. A failure is logged when it first happens and
// when it clears, not at every interval. Without Live or an extensions file it returns at once.
func (w *DialplanWriter) Run(ctx context.Context, interval time.Duration) {
	if !w.Enabled() || w.cfg.Live == nil {
		return
	}
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := w.cfg.Live.Current()
		if d == nil {
			continue
		}
		res, err := w.Apply(ctx, d, w.cfg.Live.Rev())
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && err.Error() != failing:
			failing = err.Error()
			w.cfg.Logger.Error().Err(err).Msg("dialplan out of step with the directory")
		case err == nil && (failing != "" || res.Reloaded):
			failing = ""
			w.cfg.Logger.Info().Int64("rev", res.Rev).Str("marker", res.Marker).Strs("wrote", res.Wrote).
				Dur("took", res.Took).Msg("dialplan back in step with the directory")
		}
	}
}

// Apply renders every tenant of d (or, with Live set, of the directory in force), writes the
// files whose content differs (atomically: a temporary file in the same directory, renamed
// over the old one, mode 0644), and when Asterisk does not have this rendering loaded, reloads
// the features module and pbx_config.so through ARI and waits, at most LiveTimeout, until the
// marker variable reads back as the rendering's. A reload refused because another is running
// (another instance's) is tried again. With no ExtensionsFile it does nothing.
func (w *DialplanWriter) Apply(ctx context.Context, d *config.Directory, rev int64) (DialplanApply, error) {
	start := time.Now()
	if !w.Enabled() {
		return DialplanApply{}, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	res, err := w.apply(ctx, start, d, rev)
	switch {
	case err != nil:
		w.failures.Inc()
	case res.Reloaded:
		w.took.Observe(res.Took.Seconds())
	}
	return res, err
}

func (w *DialplanWriter) apply(ctx context.Context, start time.Time, d *config.Directory, rev int64) (DialplanApply, error) {
	if w.cfg.Live != nil {
		if cur := w.cfg.Live.Current(); cur != nil {
			d, rev = cur, w.cfg.Live.Rev()
		}
	}
	res := DialplanApply{Rev: rev}
	if d == nil {
		return res, errors.New("apply dialplan: no directory")
	}
	files, err := RenderDialplan(d, w.cfg.AppName)
	if err != nil {
		return res, fmt.Errorf("apply dialplan of revision %d: %w", rev, err)
	}
	res.Marker = files.Marker
	wroteFeatures := false
	if w.cfg.FeaturesFile != "" {
		if wroteFeatures, err = writeIfChanged(w.cfg.FeaturesFile, files.Features); err != nil {
			return res, fmt.Errorf("apply dialplan of revision %d: %w", rev, err)
		}
		if wroteFeatures {
			res.Wrote = append(res.Wrote, w.cfg.FeaturesFile)
		}
	}
	wroteExt, err := writeIfChanged(w.cfg.ExtensionsFile, files.Extensions)
	if err != nil {
		return res, fmt.Errorf("apply dialplan of revision %d: %w", rev, err)
	}
	if wroteExt {
		res.Wrote = append(res.Wrote, w.cfg.ExtensionsFile)
	}

	loaded, err := w.cfg.ARI.GlobalVar(ctx, dialplan.MarkerVariable)
	if err != nil {
		return res, fmt.Errorf("apply dialplan of revision %d: reading %s: %w", rev, dialplan.MarkerVariable, err)
	}
	if loaded == files.Marker && !wroteFeatures {
		return res, nil // loaded already: nothing changed, or another instance applied it
	}
	res.Reloaded = true
	deadline := start.Add(w.cfg.LiveTimeout)
	// features.conf first: the agents' subroutine of the new dialplan names its entries.
	if w.cfg.FeaturesFile != "" {
		if err := w.reload(ctx, FeaturesModule, deadline); err != nil {
			return res, fmt.Errorf("apply dialplan of revision %d: %w", rev, err)
		}
	}
	if loaded == files.Marker {
		res.Took = time.Since(start)
		return res, nil
	}
	if err := w.reload(ctx, PBXConfigModule, deadline); err != nil {
		return res, fmt.Errorf("apply dialplan of revision %d: %w", rev, err)
	}
	for {
		loaded, err = w.cfg.ARI.GlobalVar(ctx, dialplan.MarkerVariable)
		if err == nil && loaded == files.Marker {
			res.Took = time.Since(start)
			return res, nil
		}
		if err != nil && ctx.Err() != nil {
			return res, fmt.Errorf("apply dialplan of revision %d: %w", rev, err)
		}
		if time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, w.cfg.Poll); err != nil {
			return res, fmt.Errorf("apply dialplan of revision %d: %w", rev, err)
		}
	}
	if b, rerr := os.ReadFile(w.cfg.ExtensionsFile); rerr == nil && !bytes.Equal(b, files.Extensions) {
		return res, fmt.Errorf("apply dialplan of revision %d: %s was rewritten meanwhile by another writer (another earpiece instance with another directory revision?)", rev, w.cfg.ExtensionsFile)
	}
	return res, fmt.Errorf("apply dialplan of revision %d: after reloading %s, Asterisk's %s is %q, not %q, within %v: "+
		"does extensions.conf #include %s, and does Asterisk read the file earpiece writes (the same path, a shared volume)?",
		rev, PBXConfigModule, dialplan.MarkerVariable, loaded, files.Marker, w.cfg.LiveTimeout, filepath.Base(w.cfg.ExtensionsFile))
}

// reload reloads module, again while Asterisk answers that another reload is running (409),
// until deadline.
func (w *DialplanWriter) reload(ctx context.Context, module string, deadline time.Time) error {
	for {
		err := w.cfg.ARI.ReloadModule(ctx, module)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ari.ErrConflict) || time.Now().After(deadline) {
			return fmt.Errorf("reloading %s: %w", module, err)
		}
		if err := sleepCtx(ctx, w.cfg.Poll); err != nil {
			return fmt.Errorf("reloading %s: %w", module, err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// writeIfChanged writes b to path unless the file holds b already, and reports whether it
// wrote. The write is atomic: a temporary file in the same directory (so the rename does not
// cross file systems), synced, mode 0644 (Asterisk, another user, reads it), renamed over path.
// A reader sees the old content or the new, never a part.
func writeIfChanged(path string, b []byte) (bool, error) {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, b):
		return false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		done = true
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	done = true
	return true, nil
}
