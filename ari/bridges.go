package ari

import (
	"context"
	"net/http"
	"strings"
)

// ListBridges lists the active bridges (GET /bridges).
func (c *Client) ListBridges(ctx context.Context) ([]Bridge, error) {
	var bs []Bridge
	err := c.do(ctx, http.MethodGet, "/bridges", nil, nil, &bs)
	return bs, err
}

// GetBridge returns a bridge's snapshot (GET /bridges/{bridgeId}).
func (c *Client) GetBridge(ctx context.Context, id BridgeID) (Bridge, error) {
	var b Bridge
	err := c.do(ctx, http.MethodGet, "/bridges/"+seg(string(id)), nil, nil, &b)
	return b, err
}

// CreateBridgeRequest holds the parameters of POST /bridges.
type CreateBridgeRequest struct {
	// BridgeID is chosen by the caller (POST /bridges/{bridgeId}). An
	// existing id is a 409. It must not equal the id of any channel the app
	// is subscribed to (including a Local channel's ;2 half): Asterisk keys
	// subscriptions by id alone and the bridge's events would not arrive.
	BridgeID BridgeID
	// Types are bridge type flags: mixing, holding, dtmf_events,
	// proxy_media, video_sfu, video_single, sdp_label; sent comma-separated.
	Types []string
	Name  string
}

// CreateBridge creates a bridge (POST /bridges, or POST /bridges/{bridgeId}
// when BridgeID is set).
func (c *Client) CreateBridge(ctx context.Context, r CreateBridgeRequest) (Bridge, error) {
	path := "/bridges"
	if r.BridgeID != "" {
		path += "/" + seg(string(r.BridgeID))
	}
	var b Bridge
	err := c.do(ctx, http.MethodPost, path, query("type", strings.Join(r.Types, ","), "name", r.Name), nil, &b)
	return b, err
}

// AddChannelRequest holds the parameters of POST
// /bridges/{bridgeId}/addChannel.
type AddChannelRequest struct {
	Channels                    []ChannelID // sent comma-separated
	Role                        string
	AbsorbDTMF                  bool
	Mute                        bool
	InhibitConnectedLineUpdates bool
}

// AddChannel adds channels to a bridge (POST /bridges/{bridgeId}/addChannel).
// A channel already in another bridge is moved (ChannelLeftBridge, then
// ChannelEnteredBridge). A channel not in Stasis is a 422.
func (c *Client) AddChannel(ctx context.Context, id BridgeID, r AddChannelRequest) error {
	q := query(
		"channel", joinIDs(r.Channels),
		"role", r.Role,
		"absorbDTMF", boolParam(r.AbsorbDTMF),
		"mute", boolParam(r.Mute),
		"inhibitConnectedLineUpdates", boolParam(r.InhibitConnectedLineUpdates),
	)
	return c.do(ctx, http.MethodPost, "/bridges/"+seg(string(id))+"/addChannel", q, nil, nil)
}

// RemoveChannel removes channels from a bridge (POST
// /bridges/{bridgeId}/removeChannel). A channel not in the bridge is a 422.
func (c *Client) RemoveChannel(ctx context.Context, id BridgeID, channels ...ChannelID) error {
	q := query("channel", joinIDs(channels))
	return c.do(ctx, http.MethodPost, "/bridges/"+seg(string(id))+"/removeChannel", q, nil, nil)
}

// DestroyBridge destroys a bridge; its channels stay in Stasis (DELETE
// /bridges/{bridgeId}).
func (c *Client) DestroyBridge(ctx context.Context, id BridgeID) error {
	return c.do(ctx, http.MethodDelete, "/bridges/"+seg(string(id)), nil, nil, nil)
}

// PlayBridge plays media to every channel of a bridge (POST
// /bridges/{bridgeId}/play, or .../play/{playbackId} when PlaybackID is set).
func (c *Client) PlayBridge(ctx context.Context, id BridgeID, r PlayRequest) (Playback, error) {
	path := "/bridges/" + seg(string(id)) + "/play"
	if r.PlaybackID != "" {
		path += "/" + seg(string(r.PlaybackID))
	}
	var pb Playback
	err := c.do(ctx, http.MethodPost, path, r.query(), nil, &pb)
	return pb, err
}
