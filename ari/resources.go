package ari

import (
	"context"
	"net/http"
	"net/url"
)

// AsteriskInfo returns Asterisk's build, system, config and status
// information (GET /asterisk/info).
func (c *Client) AsteriskInfo(ctx context.Context) (AsteriskInfo, error) {
	var info AsteriskInfo
	err := c.do(ctx, http.MethodGet, "/asterisk/info", nil, nil, &info)
	return info, err
}

// Ping checks that ARI answers (GET /asterisk/ping).
func (c *Client) Ping(ctx context.Context) (AsteriskPing, error) {
	var p AsteriskPing
	err := c.do(ctx, http.MethodGet, "/asterisk/ping", nil, nil, &p)
	return p, err
}

// ListEndpoints lists all endpoints (GET /endpoints).
func (c *Client) ListEndpoints(ctx context.Context) ([]Endpoint, error) {
	var eps []Endpoint
	err := c.do(ctx, http.MethodGet, "/endpoints", nil, nil, &eps)
	return eps, err
}

// GetEndpoint returns an endpoint with the ids of its channels (GET
// /endpoints/{tech}/{resource}), e.g. GetEndpoint(ctx, "PJSIP", "1001").
func (c *Client) GetEndpoint(ctx context.Context, tech, resource string) (Endpoint, error) {
	var ep Endpoint
	err := c.do(ctx, http.MethodGet, "/endpoints/"+seg(tech)+"/"+seg(resource), nil, nil, &ep)
	return ep, err
}

// GetApplication returns a Stasis application's subscriptions and filters
// (GET /applications/{applicationName}). Empty app means Config.App.
func (c *Client) GetApplication(ctx context.Context, app string) (Application, error) {
	var a Application
	err := c.do(ctx, http.MethodGet, "/applications/"+seg(c.appOr(app)), nil, nil, &a)
	return a, err
}

// Subscribe subscribes an application to event sources such as
// "channel:<id>", "bridge:<id>", "endpoint:<tech>/<resource>",
// "deviceState:<name>" (POST /applications/{applicationName}/subscription).
// Empty app means Config.App.
func (c *Client) Subscribe(ctx context.Context, app string, sources ...string) (Application, error) {
	var a Application
	q := query("eventSource", joinIDs(sources))
	err := c.do(ctx, http.MethodPost, "/applications/"+seg(c.appOr(app))+"/subscription", q, nil, &a)
	return a, err
}

// Unsubscribe removes event sources from an application (DELETE
// /applications/{applicationName}/subscription). Empty app means Config.App.
func (c *Client) Unsubscribe(ctx context.Context, app string, sources ...string) (Application, error) {
	var a Application
	q := query("eventSource", joinIDs(sources))
	err := c.do(ctx, http.MethodDelete, "/applications/"+seg(c.appOr(app))+"/subscription", q, nil, &a)
	return a, err
}

// SetEventFilter replaces both event type filters of an application (PUT
// /applications/{applicationName}/eventFilter). An empty allowed list
// allows every type; an empty disallowed list disallows none; disallowed
// wins over allowed. Empty app means Config.App.
func (c *Client) SetEventFilter(ctx context.Context, app string, allowed, disallowed []string) (Application, error) {
	toFilters := func(types []string) []EventFilter {
		fs := make([]EventFilter, len(types)) // [] not null: both lists are set
		for i, t := range types {
			fs[i] = EventFilter{Type: t}
		}
		return fs
	}
	body := struct {
		Allowed    []EventFilter `json:"allowed"`
		Disallowed []EventFilter `json:"disallowed"`
	}{toFilters(allowed), toFilters(disallowed)}
	var a Application
	err := c.do(ctx, http.MethodPut, "/applications/"+seg(c.appOr(app))+"/eventFilter", nil, body, &a)
	return a, err
}

// GetPlayback returns a playback's state (GET /playbacks/{playbackId}).
func (c *Client) GetPlayback(ctx context.Context, id PlaybackID) (Playback, error) {
	var pb Playback
	err := c.do(ctx, http.MethodGet, "/playbacks/"+seg(string(id)), nil, nil, &pb)
	return pb, err
}

// StopPlayback stops a playback (DELETE /playbacks/{playbackId}).
func (c *Client) StopPlayback(ctx context.Context, id PlaybackID) error {
	return c.do(ctx, http.MethodDelete, "/playbacks/"+seg(string(id)), nil, nil, nil)
}

// RecordRequest holds the parameters of POST /channels/{channelId}/record
// and POST /bridges/{bridgeId}/record.
type RecordRequest struct {
	Name               RecordingName
	Format             string // e.g. wav
	MaxDurationSeconds int    // zero: no limit
	MaxSilenceSeconds  int    // zero: no limit
	IfExists           string // fail (default), overwrite, append
	Beep               bool
	TerminateOn        string // none (default), any, *, #
}

func (r RecordRequest) query() url.Values {
	return query(
		"name", string(r.Name),
		"format", r.Format,
		"maxDurationSeconds", itoa(r.MaxDurationSeconds),
		"maxSilenceSeconds", itoa(r.MaxSilenceSeconds),
		"ifExists", r.IfExists,
		"beep", boolParam(r.Beep),
		"terminateOn", r.TerminateOn,
	)
}

// RecordChannel starts recording a channel (POST
// /channels/{channelId}/record).
func (c *Client) RecordChannel(ctx context.Context, id ChannelID, r RecordRequest) (LiveRecording, error) {
	var rec LiveRecording
	err := c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/record", r.query(), nil, &rec)
	return rec, err
}

// RecordBridge starts recording a bridge's mixed audio (POST
// /bridges/{bridgeId}/record).
func (c *Client) RecordBridge(ctx context.Context, id BridgeID, r RecordRequest) (LiveRecording, error) {
	var rec LiveRecording
	err := c.do(ctx, http.MethodPost, "/bridges/"+seg(string(id))+"/record", r.query(), nil, &rec)
	return rec, err
}

// GetLiveRecording returns a live recording's state (GET
// /recordings/live/{recordingName}).
func (c *Client) GetLiveRecording(ctx context.Context, name RecordingName) (LiveRecording, error) {
	var rec LiveRecording
	err := c.do(ctx, http.MethodGet, "/recordings/live/"+seg(string(name)), nil, nil, &rec)
	return rec, err
}

// StopRecording stops a live recording and stores it (POST
// /recordings/live/{recordingName}/stop).
func (c *Client) StopRecording(ctx context.Context, name RecordingName) error {
	return c.do(ctx, http.MethodPost, "/recordings/live/"+seg(string(name))+"/stop", nil, nil, nil)
}

// GetStoredRecording returns a stored recording (GET
// /recordings/stored/{recordingName}).
func (c *Client) GetStoredRecording(ctx context.Context, name RecordingName) (StoredRecording, error) {
	var rec StoredRecording
	err := c.do(ctx, http.MethodGet, "/recordings/stored/"+seg(string(name)), nil, nil, &rec)
	return rec, err
}

// StoredRecordingFile returns a stored recording's file (GET
// /recordings/stored/{recordingName}/file). It is read into memory whole.
func (c *Client) StoredRecordingFile(ctx context.Context, name RecordingName) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, "/recordings/stored/"+seg(string(name))+"/file", nil, nil, &b)
	return b, err
}

// DeleteStoredRecording deletes a stored recording (DELETE
// /recordings/stored/{recordingName}).
func (c *Client) DeleteStoredRecording(ctx context.Context, name RecordingName) error {
	return c.do(ctx, http.MethodDelete, "/recordings/stored/"+seg(string(name)), nil, nil, nil)
}
