package store

// Key schema. Every key earpiece writes starts with Prefix, which carries the
// schema version: a change that old instances cannot read gets a new version
// (earpiece:v2:...) rather than an in-place migration.
//
// The keys a session change touches (the session record and its indexes) share
// the Redis Cluster hash tag {sessions}, so that MULTI/EXEC, WATCH, Lua and
// MGET over them are legal on a cluster (go-redis' ClusterClient.Watch refuses
// keys in different slots, and a cluster TxPipeline is only atomic per slot).
// The price is that all live-call state sits on one shard; at contact-center
// scale (thousands of sessions, a few writes per session per minute) one
// shard is far from its limits. Claims, audit streams and idempotency keys are
// single-key and spread over the cluster.
//
// "TTL live" below is Options.TTL, re-applied to every key of a session's
// footprint on each write (create, update), so a session that an instance
// abandoned (crash, partition) disappears by itself and a live one never
// expires under a call.
const (
	// Prefix is the namespace and schema version of every key.
	Prefix = "earpiece:v1:"

	// keySession + session id → string: the Session as JSON.
	// TTL live while the session is live; Options.HistoryTTL once it ended
	// (the ended record stays readable by GetSession for history/reports).
	keySession = Prefix + "{sessions}:session:"

	// keyChannel + Asterisk channel id → string: the id of the live session
	// that channel belongs to, as its supervisor channel or its snoop
	// channel. A channel belongs to at most one live session; CreateSession
	// and UpdateSession refuse a channel another live session holds.
	// TTL live; deleted when the session ends or stops using the channel.
	keyChannel = Prefix + "{sessions}:channel:"

	// keyCall + agent channel id (the supervised call) → set of ids of the
	// live sessions supervising that call (several supervisors may listen to
	// one call). TTL live, refreshed by a write to any member, so the set
	// outlives its members; members whose session expired are pruned on read.
	keyCall = Prefix + "{sessions}:call:"

	// keyTenant + tenant → set of ids of the tenant's live sessions.
	// TTL live, refreshed by a write to any member; pruned on read like keyCall.
	keyTenant = Prefix + "{sessions}:tenant:"

	// keyClaim + caller's claim key (for example "channel:<id>") → string: the
	// owner (app instance id) that handles it. TTL chosen by the claimer,
	// extended by RenewClaim; deleted by Release from its owner only.
	keyClaim = Prefix + "claim:"

	// keyAudit + tenant → stream of audit entries (fields time, tenant, actor,
	// action, target, outcome, reason, session, extra as JSON). Entry ids are
	// the Redis server's clock in ms. No TTL: the audit trail is durable;
	// XADD trims it to about Options.AuditMaxLen entries.
	keyAudit = Prefix + "audit:"

	// keyIdem + tenant + ":" + caller's key → string: the bytes stored by the
	// first PutIfAbsent (for example an API response). TTL chosen by the
	// caller. Tenants cannot contain ':', so tenants cannot collide.
	keyIdem = Prefix + "idem:"
)

func sessionKey(id string) string    { return keySession + id }
func channelKey(ch string) string    { return keyChannel + ch }
func callKey(agentCh string) string  { return keyCall + agentCh }
func tenantKey(tenant string) string { return keyTenant + tenant }
func claimKey(key string) string     { return keyClaim + key }
func auditKey(tenant string) string  { return keyAudit + tenant }
func idemKey(tenant, key string) string {
	return keyIdem + tenant + ":" + key
}
