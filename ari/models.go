package ari

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// ChannelID identifies a channel (Channel.id in channels.json; the AMI Uniqueid).
type ChannelID string

// BridgeID identifies a bridge (Bridge.id in bridges.json).
type BridgeID string

// PlaybackID identifies a playback (Playback.id in playbacks.json).
type PlaybackID string

// RecordingName names a live or stored recording (LiveRecording.name and
// StoredRecording.name in recordings.json).
type RecordingName string

// Direction is the audio direction used by snoop (spy, whisper) and mute in
// channels.json. "in" is audio Asterisk reads from the channel (that party's
// voice), "out" is audio Asterisk writes to it (what that party hears).
type Direction string

// The directions channels.json allows for spy, whisper and mute. Mute does
// not accept DirNone.
const (
	DirNone Direction = "none"
	DirIn   Direction = "in"
	DirOut  Direction = "out"
	DirBoth Direction = "both"
)

// Valid reports whether d is one of the four directions ARI knows.
func (d Direction) Valid() bool {
	switch d {
	case DirNone, DirIn, DirOut, DirBoth:
		return true
	}
	return false
}

// Time is an ARI "Date": Asterisk writes 2026-11-21T22:33:19.123+0000
// (ast_json_timeval, millisecond precision, numeric zone without a colon).
// Unmarshalling also accepts RFC 3339, and "" or null as the zero time.
type Time struct {
	time.Time
}

// asteriskLayout is the layout Asterisk writes. When parsing, Go accepts a
// fractional second after the seconds even though the layout has none.
const (
	asteriskLayout      = "2006-01-02T15:04:05.000-0700"
	asteriskParseLayout = "2006-01-02T15:04:05-0700"
)

// MarshalJSON writes t the way Asterisk does.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(asteriskLayout)+2)
	b = append(b, '"')
	b = t.Time.AppendFormat(b, asteriskLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON reads an Asterisk timestamp or an RFC 3339 one.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("ari: timestamp %.40s is not a JSON string", b)
	}
	parsed, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// ParseTime parses an Asterisk timestamp (2026-11-21T22:33:19.123+0000) or an
// RFC 3339 one. The empty string is the zero time.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if tm, err := time.Parse(asteriskParseLayout, s); err == nil {
		return checkZone(tm, s)
	}
	if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return checkZone(tm, s)
	}
	return time.Time{}, fmt.Errorf("ari: bad timestamp %.40q", s)
}

// checkZone rejects zone offsets no real clock has (Go's -0700 parser takes
// any two digits), so every Time we accept can be written back and re-read.
func checkZone(tm time.Time, s string) (time.Time, error) {
	_, off := tm.Zone()
	if off <= -24*3600 || off >= 24*3600 {
		return time.Time{}, fmt.Errorf("ari: bad zone offset in timestamp %.40q", s)
	}
	return tm, nil
}

// CallerID is a name and number (CallerID in channels.json).
type CallerID struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

// DialplanCEP is a position in the dialplan (DialplanCEP in channels.json).
type DialplanCEP struct {
	Context  string `json:"context"`
	Exten    string `json:"exten"`
	Priority int64  `json:"priority"`
	AppName  string `json:"app_name"`
	AppData  string `json:"app_data"`
}

// Channel is a snapshot of a channel (Channel in channels.json).
type Channel struct {
	ID           ChannelID         `json:"id"`
	ProtocolID   string            `json:"protocol_id"`
	Name         string            `json:"name"`
	State        string            `json:"state"`
	Caller       CallerID          `json:"caller"`
	Connected    CallerID          `json:"connected"`
	AccountCode  string            `json:"accountcode"`
	Dialplan     DialplanCEP       `json:"dialplan"`
	CreationTime Time              `json:"creationtime"`
	Language     string            `json:"language"`
	ChannelVars  map[string]string `json:"channelvars,omitempty"`
	CallerRDNIS  string            `json:"caller_rdnis,omitempty"`
	TenantID     string            `json:"tenantid,omitempty"`
}

// Bridge is a snapshot of a bridge (Bridge in bridges.json).
type Bridge struct {
	ID            BridgeID          `json:"id"`
	Technology    string            `json:"technology"`
	BridgeType    string            `json:"bridge_type"`
	BridgeClass   string            `json:"bridge_class"`
	Creator       string            `json:"creator"`
	Name          string            `json:"name"`
	Channels      []ChannelID       `json:"channels"`
	VideoMode     string            `json:"video_mode,omitempty"`
	VideoSourceID ChannelID         `json:"video_source_id,omitempty"`
	CreationTime  Time              `json:"creationtime"`
	BridgeVars    map[string]string `json:"bridgevars,omitempty"`
}

// Endpoint is a snapshot of an endpoint (Endpoint in endpoints.json).
type Endpoint struct {
	Technology string      `json:"technology"`
	Resource   string      `json:"resource"`
	State      string      `json:"state,omitempty"`
	ChannelIDs []ChannelID `json:"channel_ids"`
}

// Playback is a media playback (Playback in playbacks.json).
type Playback struct {
	ID           PlaybackID `json:"id"`
	MediaURI     string     `json:"media_uri"`
	NextMediaURI string     `json:"next_media_uri,omitempty"`
	TargetURI    string     `json:"target_uri"`
	Language     string     `json:"language,omitempty"`
	State        string     `json:"state"`
}

// LiveRecording is a recording in progress (LiveRecording in recordings.json).
type LiveRecording struct {
	Name            RecordingName `json:"name"`
	Format          string        `json:"format"`
	TargetURI       string        `json:"target_uri"`
	State           string        `json:"state"`
	Duration        int           `json:"duration,omitempty"`
	TalkingDuration int           `json:"talking_duration,omitempty"`
	SilenceDuration int           `json:"silence_duration,omitempty"`
	Cause           string        `json:"cause,omitempty"`
}

// StoredRecording is a finished recording (StoredRecording in recordings.json).
type StoredRecording struct {
	Name   RecordingName `json:"name"`
	Format string        `json:"format"`
}

// EventFilter is one entry of an application's event filter
// (PUT /applications/{applicationName}/eventFilter).
type EventFilter struct {
	Type string `json:"type"`
}

// Application is a Stasis application's state and subscriptions
// (Application in applications.json).
type Application struct {
	Name             string        `json:"name"`
	ChannelIDs       []ChannelID   `json:"channel_ids"`
	BridgeIDs        []BridgeID    `json:"bridge_ids"`
	EndpointIDs      []string      `json:"endpoint_ids"`
	DeviceNames      []string      `json:"device_names"`
	EventsAllowed    []EventFilter `json:"events_allowed"`
	EventsDisallowed []EventFilter `json:"events_disallowed"`
}

// BuildInfo describes how Asterisk was built (BuildInfo in asterisk.json).
type BuildInfo struct {
	OS      string `json:"os"`
	Kernel  string `json:"kernel"`
	Options string `json:"options"`
	Machine string `json:"machine"`
	Date    string `json:"date"`
	User    string `json:"user"`
}

// SystemInfo is Asterisk's version and entity id (SystemInfo in asterisk.json).
type SystemInfo struct {
	Version  string `json:"version"`
	EntityID string `json:"entity_id"`
}

// SetID is the user and group Asterisk runs as (SetId in asterisk.json).
type SetID struct {
	User  string `json:"user"`
	Group string `json:"group"`
}

// ConfigInfo is Asterisk's global configuration (ConfigInfo in asterisk.json).
type ConfigInfo struct {
	Name            string  `json:"name"`
	DefaultLanguage string  `json:"default_language"`
	MaxChannels     int     `json:"max_channels,omitempty"`
	MaxOpenFiles    int     `json:"max_open_files,omitempty"`
	MaxLoad         float64 `json:"max_load,omitempty"`
	SetID           SetID   `json:"setid"`
}

// StatusInfo is when Asterisk started and last reloaded (StatusInfo in
// asterisk.json).
type StatusInfo struct {
	StartupTime    Time `json:"startup_time"`
	LastReloadTime Time `json:"last_reload_time"`
}

// AsteriskInfo is the answer of GET /asterisk/info (AsteriskInfo in
// asterisk.json). Each part is present only if asked for (all by default).
type AsteriskInfo struct {
	Build  *BuildInfo  `json:"build,omitempty"`
	System *SystemInfo `json:"system,omitempty"`
	Config *ConfigInfo `json:"config,omitempty"`
	Status *StatusInfo `json:"status,omitempty"`
}

// EntityID is the Asterisk instance's id (system.entity_id), the same value
// events carry as asterisk_id. It is "" if the system part is absent.
func (i AsteriskInfo) EntityID() string {
	if i.System == nil {
		return ""
	}
	return i.System.EntityID
}

// AsteriskPing is the answer of GET /asterisk/ping (AsteriskPing in
// asterisk.json).
type AsteriskPing struct {
	AsteriskID string `json:"asterisk_id"`
	Ping       string `json:"ping"`
	Timestamp  string `json:"timestamp"`
}

// Variable is the value of a channel or global variable (Variable in
// asterisk.json).
type Variable struct {
	Value string `json:"value"`
}

// DeviceState is the state of a device (DeviceState in deviceStates.json).
type DeviceState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// TextMessage is an out-of-call text message (TextMessage in endpoints.json).
type TextMessage struct {
	From      string            `json:"from"`
	To        string            `json:"to"`
	Body      string            `json:"body"`
	Variables map[string]string `json:"variables,omitempty"`
}
