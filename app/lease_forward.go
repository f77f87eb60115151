package app

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Forwarding: the API answers the same on every instance. Reads come from Redis (sessions,
// help requests, the audit trail) or, for the calls list, from Asterisk's REST API, which every
// instance may use. A request that changes a session — a join (POST /v1/supervisions, a help
// accept with a mode), a mode switch (PATCH), an end (DELETE) — must be carried out by the
// instance that runs the node's sessions; on any other (a standby, an instance of another node,
// one that just lost its lease) the app method hands it over to that node's active through
// Redis: a command on the node's queue (store.PushCommand), carried out by the active as the
// same app method with the same authenticated principal, its answer (the session, or the error
// with its code) back under the command's id. The HTTP edge authenticated, budgeted and checked
// the request (signature, nonce, idempotency key) on the instance it reached; the active trusts
// the command as it trusts anything in Redis.
//
// Why not an HTTP proxy to an advertised URL: the edge's checks are not repeatable (a signed
// request's nonce is accepted once), the client's address (budgets, the loopback-only sample
// keys) would become the forwarding instance's, and instances would need a network path and a
// trust scheme between them. Through Redis, which every instance reaches anyway, a command
// queued during a takeover is carried out by the new active as soon as it runs.

// Command operations.
const (
	opJoin  = "join"
	opMode  = "mode"
	opLeave = "leave"
)

// Timing of forwarded commands.
const (
	// forwardWait bounds a forwarded request whose ctx has no deadline.
	forwardWait = 30 * time.Second
	// forwardMargin: the active drops a command this close to its deadline, so it does not
	// act on a request its caller has given up.
	forwardMargin = 500 * time.Millisecond
	// commandTTL is how long queued commands and replies live in Redis.
	commandTTL = time.Minute
	// adoptWait is how long the active waits for a session it is taking over before it
	// answers a request about it.
	adoptWait = 2 * time.Second
)

// command is a request forwarded to a node's active.
type command struct {
	ID        string    `json:"id"`
	Op        string    `json:"op"`
	From      string    `json:"from"`
	Principal Principal `json:"principal"`
	Join      *joinWire `json:"join,omitempty"`
	Session   string    `json:"session,omitempty"`
	Mode      string    `json:"mode,omitempty"`
	Deadline  time.Time `json:"deadline"`
}

type joinWire struct {
	CallID      string `json:"call_id,omitempty"`
	Agent       string `json:"agent,omitempty"`
	Supervisor  string `json:"supervisor,omitempty"`
	Mode        string `json:"mode"`
	HelpRequest string `json:"help_request,omitempty"`
}

// commandReply is a command's answer.
type commandReply struct {
	Session *store.Session `json:"session,omitempty"`
	Error   *wireError     `json:"error,omitempty"`
}

// wireError is an API error as it crosses between instances.
type wireError struct {
	Kind    string         `json:"kind"` // not_found, forbidden, conflict, invalid, unavailable; "" for an internal error
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Field   string         `json:"field,omitempty"`
	Fields  []FieldProblem `json:"fields,omitempty"`
}

var errorKinds = map[string]error{
	"not_found": ErrNotFound, "forbidden": ErrForbidden, "conflict": ErrConflict,
	"invalid": ErrInvalid, "unavailable": ErrUnavailable,
}

func wireErrorOf(err error) *wireError {
	var ae *Error
	if !errors.As(err, &ae) {
		return &wireError{Code: "internal", Message: "internal error"}
	}
	w := &wireError{Code: ae.Code, Message: ae.Message, Field: ae.Field, Fields: ae.Fields}
	for name, k := range errorKinds {
		if errors.Is(ae.Kind, k) {
			w.Kind = name
		}
	}
	return w
}

func (w *wireError) err() error {
	k, ok := errorKinds[w.Kind]
	if !ok {
		return errors.New("forwarded request failed: " + w.Message)
	}
	return &Error{Kind: k, Code: w.Code, Message: w.Message, Field: w.Field, Fields: w.Fields}
}

// ctxLocal marks a request carried out here for another instance: never forwarded again.
type ctxLocal struct{}

func localOnly(ctx context.Context) context.Context { return context.WithValue(ctx, ctxLocal{}, true) }

// forwardTarget reports whether a request about a session of node (this node for "") must be
// forwarded, and where: to another node's active, or to this node's when this instance does not
// run it.
func (a *App) forwardTarget(ctx context.Context, node string) (string, bool) {
	if a.cfg.Lease == nil || ctx.Value(ctxLocal{}) != nil {
		return "", false
	}
	if node == "" {
		node = a.node()
	}
	if node != a.node() {
		return node, true
	}
	if a.Active() {
		return "", false
	}
	return node, true
}

// forwardJoin has node's active carry out Join.
func (a *App) forwardJoin(ctx context.Context, node string, p Principal, req JoinRequest) (store.Session, error) {
	return a.forward(ctx, node, command{Op: opJoin, Principal: p, Join: &joinWire{
		CallID: req.CallID, Agent: req.Agent, Supervisor: req.Supervisor, Mode: req.Mode.String(), HelpRequest: req.HelpRequest,
	}})
}

// modeElsewhere is SetMode of a session this instance does not run.
func (a *App) modeElsewhere(ctx context.Context, p Principal, rec store.Session, mode dialplan.Mode) (store.Session, error) {
	if node, fwd := a.forwardTarget(ctx, rec.Node); fwd {
		return a.forward(ctx, node, command{Op: opMode, Principal: p, Session: rec.ID, Mode: mode.String()})
	}
	if a.awaitAdopted(ctx, rec) {
		return a.SetMode(ctx, p, rec.ID, mode)
	}
	return store.Session{}, errOtherInstance(rec)
}

// leaveElsewhere is Leave of a session this instance does not run.
func (a *App) leaveElsewhere(ctx context.Context, p Principal, rec store.Session) (store.Session, error) {
	if node, fwd := a.forwardTarget(ctx, rec.Node); fwd {
		return a.forward(ctx, node, command{Op: opLeave, Principal: p, Session: rec.ID})
	}
	if a.awaitAdopted(ctx, rec) {
		return a.Leave(ctx, p, rec.ID)
	}
	return store.Session{}, errOtherInstance(rec)
}

// awaitAdopted waits (adoptWait at most) for the active of rec's node, this instance, to run the
// session: it has just taken the node over and is adopting it.
func (a *App) awaitAdopted(ctx context.Context, rec store.Session) bool {
	if !a.ha.managed.Load() || !a.Active() || (rec.Node != "" && rec.Node != a.node()) {
		return false
	}
	deadline := time.NewTimer(adoptWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, ok := a.localSession(rec.ID); ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}

// errNoActive: nobody carried the command out in time.
func errNoActive(cause error) error {
	return apiFailure(ErrUnavailable, "no_active_instance",
		"no earpiece instance is running this node's calls right now; retry shortly", cause)
}

// forward queues cmd for node's active and waits for its answer until ctx's deadline
// (forwardWait without one).
func (a *App) forward(ctx context.Context, node string, cmd command) (store.Session, error) {
	ls := a.cfg.Lease
	cmd.ID, cmd.From = uuid.NewString(), a.cfg.Instance
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(forwardWait)
	}
	cmd.Deadline = deadline.Add(-forwardMargin)
	raw, err := json.Marshal(cmd)
	if err != nil {
		return store.Session{}, err
	}
	if err := ls.PushCommand(ctx, node, raw, commandTTL); err != nil {
		return store.Session{}, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
	}
	a.log.Debug().Str("op", cmd.Op).Str("node", node).Str("command", cmd.ID).Msg("forwarded to the node's active")
	for time.Until(deadline) > 0 && ctx.Err() == nil {
		// BRPOP waits in whole seconds; the read deadline leaves it room.
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		rep, err := ls.AwaitReply(wctx, cmd.ID, time.Second)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if rep == nil {
			continue
		}
		var r commandReply
		if err := json.Unmarshal(rep, &r); err != nil {
			return store.Session{}, err
		}
		if r.Error != nil {
			return store.Session{}, r.Error.err()
		}
		if r.Session == nil {
			return store.Session{}, errors.New("forwarded request: empty answer")
		}
		return *r.Session, nil
	}
	return store.Session{}, errNoActive(context.DeadlineExceeded)
}

// serveCommands carries out the commands forwarded to this node's active until ctx ends.
func (a *App) serveCommands(ctx context.Context) {
	ls := a.cfg.Lease
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		if a.ha.frozen.Load() { // tests: a paused process takes nothing
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		raw, err := ls.NextCommand(cctx, a.node(), time.Second)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Debug().Err(err).Msg("forwarded commands: reading the queue")
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if raw == nil {
			continue
		}
		var cmd command
		if err := json.Unmarshal(raw, &cmd); err != nil {
			a.log.Warn().Err(err).Msg("forwarded commands: undecodable command dropped")
			continue
		}
		if time.Now().After(cmd.Deadline) {
			a.log.Warn().Str("op", cmd.Op).Str("from", cmd.From).Msg("forwarded commands: expired command dropped")
			continue
		}
		wg.Go(func() { a.execCommand(ctx, cmd) })
	}
}

// execCommand carries out one forwarded command and sends its answer.
func (a *App) execCommand(ctx context.Context, cmd command) {
	cctx, cancel := context.WithDeadline(localOnly(context.WithoutCancel(ctx)), cmd.Deadline)
	defer cancel()
	var sess store.Session
	var err error
	switch cmd.Op {
	case opJoin:
		if cmd.Join == nil {
			err = apiError(ErrInvalid, "invalid_field", "join: missing")
			break
		}
		mode, _ := dialplan.ParseMode(cmd.Join.Mode)
		sess, err = a.Join(cctx, cmd.Principal, JoinRequest{CallID: cmd.Join.CallID, Agent: cmd.Join.Agent,
			Supervisor: cmd.Join.Supervisor, Mode: mode, HelpRequest: cmd.Join.HelpRequest})
	case opMode:
		mode, _ := dialplan.ParseMode(cmd.Mode)
		sess, err = a.SetMode(cctx, cmd.Principal, cmd.Session, mode)
	case opLeave:
		sess, err = a.Leave(cctx, cmd.Principal, cmd.Session)
	default:
		err = apiError(ErrInvalid, "invalid_field", "unknown operation "+cmd.Op)
	}
	var rep commandReply
	if err != nil {
		rep.Error = wireErrorOf(err)
		if rep.Error.Kind == "" {
			a.log.Error().Err(err).Str("op", cmd.Op).Msg("forwarded command failed")
		}
	} else {
		rep.Session = &sess
	}
	raw, jerr := json.Marshal(rep)
	if jerr != nil {
		a.log.Error().Err(jerr).Msg("forwarded command: encoding the answer")
		return
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer rcancel()
	if err := a.cfg.Lease.PutReply(rctx, cmd.ID, raw, commandTTL); err != nil {
		a.log.Warn().Err(err).Str("op", cmd.Op).Msg("forwarded command: answer lost")
	}
}
