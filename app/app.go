// Package app is earpiece's Stasis application: it turns a supervisor's feature code (or an API
// request) into a supervision session on Asterisk — a mixing bridge of the session's own with the
// supervisor's channel and one snoop channel on the agent's channel — switches modes on DTMF, and
// tears everything down when either side leaves. Who may supervise whom comes from the config
// directory; sessions and the audit trail live in the store (Redis).
//
// Concurrency: one dispatcher goroutine (Run) reads ARI events and routes them by channel id to
// sessions; each session owns its state and runs in its own goroutine (session.run), driving the
// pure transition function next (machine.go). Nothing else mutates a session.
package app

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// ARI lists the Asterisk calls the app makes; *ari.Client implements it.
type ARI interface {
	Answer(ctx context.Context, id ari.ChannelID) error
	Hangup(ctx context.Context, id ari.ChannelID, reason string) error
	GetChannel(ctx context.Context, id ari.ChannelID) (ari.Channel, error)
	SetVar(ctx context.Context, id ari.ChannelID, name, value string) error
	Snoop(ctx context.Context, id ari.ChannelID, req ari.SnoopRequest) (ari.Channel, error)
	Mute(ctx context.Context, id ari.ChannelID, dir ari.Direction) error
	Unmute(ctx context.Context, id ari.ChannelID, dir ari.Direction) error
	Play(ctx context.Context, id ari.ChannelID, req ari.PlayRequest) (ari.Playback, error)
	StopPlayback(ctx context.Context, id ari.PlaybackID) error
	CreateBridge(ctx context.Context, req ari.CreateBridgeRequest) (ari.Bridge, error)
	AddChannel(ctx context.Context, bridge ari.BridgeID, req ari.AddChannelRequest) error
	DestroyBridge(ctx context.Context, id ari.BridgeID) error
	ListBridges(ctx context.Context) ([]ari.Bridge, error)
	ListChannels(ctx context.Context) ([]ari.Channel, error)
	Originate(ctx context.Context, req ari.OriginateRequest) (ari.Channel, error)
	Subscribe(ctx context.Context, app string, sources ...string) (ari.Application, error)
	GetEndpoint(ctx context.Context, tech, resource string) (ari.Endpoint, error)
}

// Store is what the app keeps in Redis; *store.Store implements it.
type Store interface {
	CreateSession(ctx context.Context, s store.Session) error
	GetSession(ctx context.Context, id string) (store.Session, error)
	UpdateSession(ctx context.Context, id string, fn func(*store.Session) error) (store.Session, error)
	EndSession(ctx context.Context, id, reason string, at time.Time) (store.Session, error)
	ListSessions(ctx context.Context, tenant string) ([]store.Session, error)
	LiveSessionFor(ctx context.Context, tenant, supervisor, call string) (store.Session, error)
	AppendAudit(ctx context.Context, e store.AuditEntry) (string, error)
	AuditPage(ctx context.Context, tenant string, f store.AuditFilter, limit int) ([]store.AuditEntry, string, error)
	VerifyAudit(ctx context.Context, tenant string) (store.AuditVerification, error)
	ScanAudit(ctx context.Context, tenant string, from, to time.Time, fn func([]store.AuditEntry) error) error
	ReportRollups(ctx context.Context, tenant string, spans []store.ReportRollupSpan) ([]store.ReportRollupSlot, error)
	SetReportRollup(ctx context.Context, tenant, name string, data []byte) error
	ReportRollupsCached(ctx context.Context, tenant string, names []string) ([]bool, error)
	Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, key, owner string) error
	// MarkOnce: the journal's notification once-marker (journal_replay.go).
	MarkOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)

	// Help requests (help.go).
	CreateHelp(ctx context.Context, h store.HelpRequest) (store.HelpRequest, error)
	GetHelp(ctx context.Context, tenant, id string) (store.HelpRequest, error)
	HelpOfCall(ctx context.Context, tenant, callID string) (store.HelpRequest, error)
	AcceptHelp(ctx context.Context, tenant, id, supervisor string, at time.Time) (store.HelpRequest, error)
	CloseHelp(ctx context.Context, tenant, id, reason string, at time.Time) (store.HelpRequest, error)
	CancelHelp(ctx context.Context, tenant, id string, at time.Time) (store.HelpRequest, error)
	SetHelpSession(ctx context.Context, tenant, id, session string) (store.HelpRequest, error)
	ListHelp(ctx context.Context, tenant string, from, to time.Time) ([]store.HelpRequest, error)
	ActiveHelp(ctx context.Context, tenant string) ([]store.HelpRequest, error)
	EscalateHelp(ctx context.Context, tenant, id string, at time.Time) (store.HelpRequest, error)
	ExpireHelp(ctx context.Context, tenant, id string, at time.Time) (store.HelpRequest, error)
}

// Config tunes the app. Zero values take the defaults noted.
type Config struct {
	AppName  string // Stasis application name (default "earpiece")
	Instance string // this instance's name, recorded on its sessions (default a random id)
	// RefusalTone is how long a refused supervisor hears congestion before being hung up (3 s).
	RefusalTone time.Duration
	// EndTone is how long the supervisor hears busy when the supervised call ends (1.5 s).
	EndTone time.Duration
	// SnoopTimeout bounds the wait for a snoop's StasisStart (5 s).
	SnoopTimeout time.Duration
	// FailGrace is how long a join that failed on Asterisk waits for the supervisor's hangup
	// before it counts as failed (250 ms): a supervisor who hangs up during the join makes the
	// join's steps on their channel fail, and that is a supervisor_hangup, not an error.
	FailGrace time.Duration
	// CallTimeout bounds each ARI/Redis call a session makes (5 s).
	CallTimeout time.Duration
	// ClaimTTL is how long claims on channels and talker slots live without renewal (12 h).
	ClaimTTL time.Duration
	Logger   zerolog.Logger
	// RingTimeout bounds how long an API join rings the supervisor's phone (30 s).
	RingTimeout time.Duration
	// Notifier receives call and supervision notifications (none when nil).
	Notifier Notifier
	// Registerer receives the app's metrics (none registered when nil).
	Registerer prometheus.Registerer
	Clock      func() time.Time
	// HelpSweep is how often open help requests are checked for escalation and expiry (5 s;
	// helpsweep.go).
	HelpSweep time.Duration
	// ReportWarm is how often the rollups of recent days are computed ahead of reports (1 min;
	// reportwarm.go).
	ReportWarm time.Duration
	// Lease, when set, makes RunActive run the app as the active or the standby of its node
	// (one Asterisk and the app name) under a lease in Redis, and forwards the API's
	// session-changing requests to the node's active (lease.go); *store.Store implements it.
	Lease LeaseStore
	// LeaseTTL is the node lease's TTL (3 s): a crashed active is replaced about this long
	// after its last renewal. Renewed every third of it.
	LeaseTTL time.Duration
	// Journal keeps the teardown writes Redis could not take and replays them once it answers
	// (journal.go). Nil: a journal in memory of DefaultJournalMax entries.
	Journal *Journal
	// StoreHealth, when set (*store.Health), says whether Redis answers: while it does not,
	// joins are refused without waiting for a write to fail, teardown writes go straight to
	// the journal, and the journal is replayed as soon as Redis answers again.
	StoreHealth StoreHealth
	// JoinStoreTimeout bounds a join's first Redis write (a feature-code join's audit entry,
	// an API join's claim), so that a supervisor joining just as Redis goes away is refused
	// within it rather than CallTimeout (400 ms).
	JoinStoreTimeout time.Duration
}

func (c *Config) defaults() {
	if c.AppName == "" {
		c.AppName = "earpiece"
	}
	if c.Instance == "" {
		c.Instance = "i-" + uuid.NewString()[:8]
	}
	if c.RefusalTone <= 0 {
		c.RefusalTone = 3 * time.Second
	}
	if c.EndTone <= 0 {
		c.EndTone = 1500 * time.Millisecond
	}
	if c.FailGrace <= 0 {
		c.FailGrace = 250 * time.Millisecond
	}
	if c.SnoopTimeout <= 0 {
		c.SnoopTimeout = 5 * time.Second
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 5 * time.Second
	}
	if c.RingTimeout <= 0 {
		c.RingTimeout = 30 * time.Second
	}
	if c.ClaimTTL <= 0 {
		c.ClaimTTL = 12 * time.Hour
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.HelpSweep <= 0 {
		c.HelpSweep = 5 * time.Second
	}
	if c.ReportWarm <= 0 {
		c.ReportWarm = time.Minute
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 3 * time.Second
	}
	if c.JoinStoreTimeout <= 0 {
		c.JoinStoreTimeout = min(defaultJoinStoreTimeout, c.CallTimeout)
	}
}

// Ids earpiece gives the objects it creates. Distinct prefixes per kind matter: Asterisk keys
// its subscriptions by id string alone, so a bridge whose id equals a channel's id loses its
// events (ari's TestContract/parallel/BridgeIDCollision pins this on a real Asterisk).
const (
	sessionPrefix = "sup-"
	bridgePrefix  = "ep-br-"
	snoopPrefix   = "ep-snp-"
	// BridgeNamePrefix starts the name of every bridge earpiece makes ("earpiece:<session>"), so
	// a restarted instance finds its sessions on Asterisk.
	BridgeNamePrefix = "earpiece:"
	// VarSession is set on the supervisor's channel to the session id.
	VarSession = "EARPIECE_SESSION"
)

// Stasis arguments. The dialplan enters the app as Stasis(earpiece,feature,<tenant>,<dialed>);
// snoops carry "snoop,<session>"; supervisor legs originated by the API carry "api,<session>".
const (
	argFeature = "feature"
	argSnoop   = "snoop"
	argAPI     = "api"
)

// App is the Stasis application.
type App struct {
	cfg   Config
	log   zerolog.Logger
	ari   ARI
	store Store
	dir   config.Source
	met   *metrics

	mu       sync.Mutex // guards routes, sessions, closing and runCtx
	routes   map[ari.ChannelID]*session
	sessions map[string]*session
	// wg counts every goroutine the app starts (sessions, best-effort hangups, tone stops, the
	// calls index, reconciliation); Run returns only when it is zero. Add is called under mu
	// with closing false (API sessions), from a goroutine wg already counts, or from the
	// dispatcher, which has stopped before Run's deferred shutdown calls Wait; so it never races
	// with Wait.
	wg      sync.WaitGroup
	closing bool
	// runCtx is Run's context: every session runs under it, whoever started it (a feature code on
	// the dispatcher, or an API request whose own context ends with the request). Nil until Run.
	runCtx context.Context

	reconcileMu sync.Mutex // one reconciliation at a time
	// waiters are closed when a channel's StasisStart arrives (announcement snoops); guarded by mu.
	waiters map[ari.ChannelID]chan struct{}
	calls   calls
	// journal holds the teardown writes waiting for Redis (journal.go).
	journal *Journal

	// ha is the node lease, fencing and forwarding state (lease.go).
	ha haState

	// hooks let tests act at exact points of a session (nil in production).
	hooks struct {
		beforeSnoop func(s *session, id ari.ChannelID)
	}
}

// New builds the app. It makes no calls until Run.
func New(cfg Config, client ARI, st Store, dir config.Source) *App {
	cfg.defaults()
	a := &App{
		cfg:      cfg,
		log:      cfg.Logger,
		ari:      client,
		store:    st,
		dir:      dir,
		met:      newMetrics(cfg.Registerer),
		routes:   make(map[ari.ChannelID]*session),
		sessions: make(map[string]*session),
		waiters:  make(map[ari.ChannelID]chan struct{}),
	}
	a.calls.init(cfg.AppName)
	a.journal = cfg.Journal
	if a.journal == nil {
		a.journal, _ = OpenJournal(JournalOptions{}) // in memory: cannot fail
	}
	registerJournalMetrics(cfg.Registerer, a.journal)
	return a
}

// Run routes ARI events to sessions until ctx is done or events is closed, then ends every
// session (teardown under its own timeout) and waits for them.
func (a *App) Run(ctx context.Context, events <-chan ari.Event) error {
	a.mu.Lock()
	if a.runCtx != nil || a.closing {
		a.mu.Unlock()
		return errors.New("app: Run called twice")
	}
	a.runCtx = ctx
	a.mu.Unlock()
	defer a.shutdown()
	callsCtx, stopCalls := context.WithCancel(ctx)
	defer stopCalls()
	a.spawn(func() { a.runCalls(callsCtx) })
	a.spawn(func() { a.runHelpSweep(callsCtx) })
	a.spawn(func() { a.runReportWarm(callsCtx) })
	a.spawn(func() { a.runJournal(callsCtx) })
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return errors.New("ari event stream closed")
			}
			a.dispatch(ctx, ev)
		}
	}
}

// shutdown ends every live session. The session map is copied under the lock and the sessions
// are ended outside it (their goroutines take the lock to unregister).
func (a *App) shutdown() {
	a.mu.Lock()
	a.closing = true
	live := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		live = append(live, s)
	}
	a.mu.Unlock()
	for _, s := range live {
		s.postEvent(evLeave{reason: ReasonShutdown})
	}
	a.wg.Wait()
	a.flushJournal() // the teardowns' writes still waiting for Redis (journal_replay.go)
}

// dispatch handles one event on the dispatcher goroutine; it never blocks on a session.
func (a *App) dispatch(ctx context.Context, ev ari.Event) {
	switch e := ev.(type) {
	case *ari.StasisStart:
		a.onStasisStart(ctx, e)
		return
	case *ari.ChannelUserevent:
		a.onHelpKey(ctx, e) // the agents' in-call help key (helpkey.go)
		return
	case *ari.ConnectionEvent:
		a.log.Info().Str("state", e.State.String()).AnErr("cause", e.Err).Msg("ari connection")
		a.met.connState(e.State)
		if e.State == ari.Replaced {
			a.replaced() // lease.go: another instance took the app
		}
		a.connectionChanged() // calls.go: the calls index is not trusted until its rebuild
		if e.State == ari.Connected || e.State == ari.Desynced {
			a.spawn(func() {
				a.calls.requestResync(a.subscribePhones(ctx))
				a.reconcile(ctx)
				a.resyncLive(ctx) // resync.go: this instance's sessions whose end was missed
			})
		}
		return
	}
	a.callEvent(ev) // calls.go: the phones' channel events keep the calls index
	ch := channelOf(ev)
	if ch == "" {
		return
	}
	a.mu.Lock()
	s := a.routes[ch]
	a.mu.Unlock()
	if s != nil {
		s.postARI(ev)
	}
}

// channelOf returns the channel an event is about ("" for none).
func channelOf(ev ari.Event) ari.ChannelID {
	switch e := ev.(type) {
	case *ari.StasisEnd:
		return ari.ChannelID(e.Channel.ID)
	case *ari.ChannelDestroyed:
		return ari.ChannelID(e.Channel.ID)
	case *ari.ChannelHangupRequest:
		return ari.ChannelID(e.Channel.ID)
	case *ari.ChannelDtmfReceived:
		return ari.ChannelID(e.Channel.ID)
	case *ari.ChannelStateChange:
		return ari.ChannelID(e.Channel.ID)
	}
	return ""
}

func (a *App) onStasisStart(ctx context.Context, e *ari.StasisStart) {
	id := ari.ChannelID(e.Channel.ID)
	a.mu.Lock()
	s := a.routes[id]
	closing := a.closing
	w := a.waiters[id]
	delete(a.waiters, id)
	a.mu.Unlock()
	if w != nil {
		close(w)
		return
	}
	if s != nil {
		s.postARI(e)
		return
	}
	kind := ""
	if len(e.Args) > 0 {
		kind = e.Args[0]
	}
	switch {
	case kind == argFeature && !closing:
		a.startFeature(ctx, e)
	case kind == argSnoop, strings.HasPrefix(string(id), snoopPrefix):
		// A snoop whose session is gone (it ended while the snoop was being made): drop it.
		a.log.Info().Str("channel", string(id)).Msg("orphan snoop: hanging up")
		a.spawn(func() { a.bestEffortHangup(ctx, id) })
	default:
		a.log.Warn().Str("channel", string(id)).Strs("args", e.Args).Msg("unexpected channel in Stasis: hanging up")
		a.spawn(func() { a.bestEffortHangup(ctx, id) })
	}
}

// subscribePhones subscribes the app to every PJSIP endpoint, so the events of the phones' calls
// (which never enter Stasis) keep the calls index current; false when that failed (the index is
// then rebuilt only now and then, and joins do not rely on it).
func (a *App) subscribePhones(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	if _, err := a.ari.Subscribe(ctx, a.cfg.AppName, "endpoint:PJSIP"); err != nil {
		a.log.Warn().Err(err).Msg("subscribing to PJSIP endpoints: the calls list refreshes only periodically")
		return false
	}
	return true
}

func (a *App) bestEffortHangup(ctx context.Context, id ari.ChannelID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	if err := a.ari.Hangup(ctx, id, "normal"); err != nil && !errors.Is(err, ari.ErrNotFound) {
		a.log.Warn().Err(err).Str("channel", string(id)).Msg("hangup")
	}
}

// bestEffortDestroyBridge destroys bridge id, logging (not returning) a failure other than 404.
func (a *App) bestEffortDestroyBridge(ctx context.Context, id ari.BridgeID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	if err := a.ari.DestroyBridge(ctx, id); err != nil && !errors.Is(err, ari.ErrNotFound) {
		a.log.Warn().Err(err).Str("bridge", string(id)).Msg("destroy bridge")
	}
}

// register adds a session's channel route. It must run before the ARI call that creates or
// involves the channel, so that no event about it can arrive unrouted.
func (a *App) register(id ari.ChannelID, s *session) {
	a.mu.Lock()
	a.routes[id] = s
	a.mu.Unlock()
}

func (a *App) unregister(id ari.ChannelID) {
	a.mu.Lock()
	delete(a.routes, id)
	a.mu.Unlock()
}

// stopping is closed when Run's context ends (never, before Run).
func (a *App) stopping() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runCtx == nil {
		return nil
	}
	return a.runCtx.Done()
}

// spawn runs f on a goroutine that Run waits for. Only the dispatcher and goroutines the app
// already counts call it (see wg).
func (a *App) spawn(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// addSession starts s's goroutine under Run's context; false when Run has not started or the app
// is shutting down. It may be called from any goroutine (API requests do).
func (a *App) addSession(s *session, run func(context.Context)) bool {
	a.mu.Lock()
	if a.closing || a.runCtx == nil {
		a.mu.Unlock()
		return false
	}
	ctx := a.runCtx
	a.sessions[s.id] = s
	a.routes[s.supChan] = s
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer a.removeSession(s)
		run(ctx)
	}()
	return true
}

func (a *App) removeSession(s *session) {
	a.mu.Lock()
	delete(a.sessions, s.id)
	for id, r := range a.routes {
		if r == s {
			delete(a.routes, id)
		}
	}
	a.mu.Unlock()
}

// Live returns the ids of the sessions this instance runs now.
func (a *App) Live() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.sessions))
	for id := range a.sessions {
		ids = append(ids, id)
	}
	return ids
}

// endpointOf turns a channel name such as "PJSIP/700-0000001a" into its endpoint "PJSIP/700".
func endpointOf(channelName string) string {
	if i := strings.LastIndexByte(channelName, '-'); i > 0 {
		return channelName[:i]
	}
	return channelName
}

func newSessionID() string { return sessionPrefix + uuid.NewString() }

// audit appends an audit entry, bounded by CallTimeout (journal_replay.go: refused at once while
// Redis is known down; a session's join and end are written once, whoever writes them).
func (a *App) audit(ctx context.Context, e store.AuditEntry) error {
	return a.auditWithin(ctx, e, a.cfg.CallTimeout)
}
