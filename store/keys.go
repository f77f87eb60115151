package store

// Key schema: every key earpiece writes, and nothing else. Every key starts
// with Prefix, which carries the schema version: a change that old instances
// cannot read gets a new version (earpiece:v2:...) rather than an in-place
// migration.
//
// Keys that one change writes together share a Redis Cluster hash tag, so
// that MULTI/EXEC, WATCH, Lua and MGET over them are legal on a cluster
// (go-redis' ClusterClient.Watch refuses keys in different slots, and a
// cluster TxPipeline is only atomic per slot):
//
//   - {sessions}: a session record and its indexes. The price is that all
//     live-call state sits on one shard; at contact-center scale (thousands
//     of sessions, a few writes per session per minute) one shard is far from
//     its limits.
//   - {apikeys}: an API key record and its tenant's name index.
//   - {<tenant>}: a tenant's webhook delivery records and their order list, and its
//     webhook outbox (one script settles an attempt and writes its record).
//
// The other keys are single-key and spread over the cluster.
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
	// channel. A channel belongs to at most one live session: CreateSession
	// and UpdateSession read this index to refuse a channel another live
	// session holds. TTL live; deleted when the session ends or stops using
	// the channel.
	keyChannel = Prefix + "{sessions}:channel:"

	// keySupervising + tenant/supervisor/call id → string: the id of the live
	// session in which that supervisor supervises that call (the newest, if a
	// supervisor ever had two), so a join can check for one without listing
	// the tenant's sessions (LiveSessionFor). TTL live; deleted when the
	// session ends, unless another session took it over.
	keySupervising = Prefix + "{sessions}:supervising:"

	// keyTenant + tenant → set of ids of the tenant's live sessions
	// (ListSessions). TTL live, refreshed by a write to any member, so the
	// set outlives its members; members whose session expired are pruned on
	// read.
	keyTenant = Prefix + "{sessions}:tenant:"

	// keyClaim + caller's claim key → string: the owner (app instance or
	// session id) that holds it. The app's claim keys are "talker:<agent
	// channel id>", the one-talker slot of a call, and "join:<tenant>:<supervisor
	// extension>:<agent channel id>", held while an API join checks and records
	// that the supervisor has no other session on the call. TTL chosen by the claimer
	// (Claim by the owner again resets it); deleted by Release from its owner
	// only.
	keyClaim = Prefix + "claim:"

	// keyAudit + tenant → stream of audit entries (fields time, tenant, actor,
	// action, target, outcome, reason, session, extra as JSON, burst, key,
	// call, help, mode, trigger, and the hash chain's seq, prev, hash). Entry
	// ids are the Redis server's clock in ms. No TTL: the audit trail is
	// durable; each append drops the entries older than
	// Options.AuditRetention by that clock (XADD MINID), never by count.
	keyAudit = Prefix + "audit:"

	// keyAuditCheckpoint + "{" + the tenant's keyAudit stream key + "}" → hash (fields id,
	// seq, hash, sig, at): the last entry retention trimming dropped from that stream, whose
	// hash the first remaining entry carries as its prev, HMAC-signed with Options.AuditKey
	// (auditchain.go). The hash tag is the whole stream key, so the two share a Cluster slot
	// (an append writes both in one MULTI/EXEC) while the stream keeps the name it always
	// had. No TTL.
	keyAuditCheckpoint = Prefix + "audit-checkpoint:"

	// keyReportRollup + tenant + ":" + day (2006-01-02) + ":" + grouping + ":" + scope (a
	// supervisor's extension, or empty for the whole tenant) → string: the figures of that UTC
	// day's supervision report (app/reportrollup.go), as JSON, with the marks (first and last
	// entry ids and hashes) of the span of the audit trail they were computed from, the day and
	// its look-ahead hour. Written once that span is over; ignored (and rewritten) when the
	// span's marks no longer match. A cache of the trail, never a source: deleting these keys
	// loses nothing. TTL store.ReportRollupTTL (32 days).
	keyReportRollup = Prefix + "report-rollup:"

	// keyAuditOnce + "{" + the tenant's keyAudit stream key + "}:" + the entry's
	// AuditEntry.Once → string: the stream id of the entry appended with that Once, so that
	// appending it again writes nothing (a replayed append: the app's journal). Same hash tag
	// as the checkpoint, so it shares the stream's Cluster slot (the append script writes
	// both). TTL AuditOnceTTL.
	keyAuditOnce = Prefix + "audit-once:"

	// keyOnce + caller's key → "1": set by the first MarkOnce of the key (journal.go), so that
	// something done by whoever marks first is done once: the app's
	// "supervision.ended:<session id>", the session's end notification. TTL chosen by the caller
	// (the app: AuditOnceTTL).
	keyOnce = Prefix + "once:"

	// keyAuditBurst + tenant + ":" + burst id → integer: how many more
	// refusals the entry whose burst field is that id stands for
	// (AuditEntry.Repeats). TTL Options.AuditRetention, so it goes with its
	// entry.
	keyAuditBurst = Prefix + "audit-burst:"

	// keyIdem + tenant + ":" + caller's key → string: the bytes stored by the
	// first PutIfAbsent (for example an API response), replaced or deleted
	// only by a compare-and-swap on them (SwapIdempotent, DeleteIdempotent).
	// TTL chosen by the caller.
	keyIdem = Prefix + "idem:"

	// keyAPIKey + lower-case hex SHA-256 of an API key → string: the APIKey
	// as JSON (the key itself is never stored). No TTL: a key lives until it
	// is revoked.
	keyAPIKey = Prefix + "{apikeys}:key:"

	// keyAPIKeyNames + tenant → hash: key name → hex SHA-256 (the tenant's
	// keys by name, for listing, revoking and refusing a duplicate name).
	// No TTL.
	keyAPIKeyNames = Prefix + "{apikeys}:tenant:"

	// keyNonce + tenant + ":" + caller's nonce (a request signature) → "1".
	// TTL chosen by the caller (the replay window): while the key exists the
	// same nonce is refused.
	keyNonce = Prefix + "nonce:"

	// keyDeliveries + "{" + tenant + "}" → hash: delivery id → Delivery as
	// JSON. TTL DeliveriesTTL, re-applied on every write; entries trimmed
	// from the order list are deleted with it.
	keyDeliveries = Prefix + "deliveries:"

	// deliveriesOrderSuffix, after a tenant's keyDeliveries hash → list of
	// delivery ids, newest first, capped at DeliveriesMaxLen. Same TTL.
	deliveriesOrderSuffix = ":order"

	// keyOutbox + "{" + tenant + "}" + suffix: the tenant's webhook outbox (outbox.go), the
	// deliveries not yet delivered or given up, under the hash tag of its delivery records
	// (keyDeliveries). Scores are the Redis server's clock (TIME) in ms. No TTL: an entry
	// leaves when its delivery is delivered or fails for good, or (outbound.Hub's sweep) when
	// no instance has had its endpoint configured for a while.
	//   outboxItemsSuffix → hash: delivery id → OutboxEntry as JSON (the record as of the last
	//     attempt, the endpoint id, the body).
	//   outboxQueueSuffix → sorted set: every delivery id, scored by when it was added (depth,
	//     oldest age).
	//   outboxDueSuffix + endpoint id (hex of a SHA-256 of the endpoint's URL) → sorted set:
	//     the endpoint's delivery ids, scored by when they are next due; a claimed one by when
	//     its claim expires.
	//   outboxClaimsSuffix → hash: delivery id → token of its last claim (only that token
	//     settles it); deleted when the claim is settled or released.
	//   outboxEndpointsSuffix → set of the endpoint ids that have a due set.
	keyOutbox             = Prefix + "outbox:"
	outboxItemsSuffix     = ":items"
	outboxQueueSuffix     = ":queue"
	outboxDueSuffix       = ":due:"
	outboxClaimsSuffix    = ":claims"
	outboxEndpointsSuffix = ":endpoints"

	// keyOutboxTenants → set of the tenants whose outbox has (or had) entries: what the sweep
	// and the outbox metrics read. Added to before every new entry; never trimmed (it is as
	// large as the number of tenants with webhooks). No TTL.
	keyOutboxTenants = Prefix + "outbox-tenants"

	// keyEvents + tenant → stream of events (fields type, data). XADD trims
	// it to about EventsMaxLen entries; its TTL (EventsTTL) is re-applied on
	// every publish, so the stream of a tenant that went quiet disappears.
	keyEvents = Prefix + "events:"

	// keyHelp + "{" + tenant + "}" + suffix: a tenant's help requests, all under one hash tag
	// (a raise, a transition and its indexes are one MULTI/EXEC). Every key's TTL is
	// Options.HelpTTL, re-applied on each write.
	//   helpReqSuffix + id → string: the HelpRequest as JSON.
	//   helpCallSuffix + call id → string: the id of the call's active (open or in progress)
	//     request; exists only while that request is active (one active request per call).
	//   helpAllSuffix → sorted set: every request id, scored by its creation time in ms (lists).
	//   helpLiveSuffix → sorted set: the active request ids, scored by creation time in ms
	//     (the oldest open request, calls that ended). Ids whose record expired are pruned on
	//     read.
	// keyDirectory → hash (fields doc, rev, file, at, by): the tenant directory in force, as
	// the app's document, with its revision, the hash of the configuration file last imported,
	// and when and by whom it last changed (directory.go). No TTL: it is configuration.
	// Changes are serialised by the claim "directory" (keyClaim) and announced on
	// chanDirectory.
	keyDirectory = Prefix + "directory"

	// chanDirectory is the Pub/Sub channel announcing each new directory revision.
	chanDirectory = Prefix + "directory:changed"

	// keyProbe + random hex → string: written and deleted at once by ProbeWrite (`earpiece
	// doctor`: does Redis accept writes?). TTL 10 s, should the delete never come.
	keyProbe = Prefix + "probe:"

	// keyWebSession + lower-case hex SHA-256 of a dashboard session token (the browser's
	// cookie value; the token itself is never stored) → hash (fields doc: the WebSession as
	// JSON, with the SHA-256 of the API key it was opened with and its CSRF token; exp: its
	// absolute end in Unix ms). TTL the idle timeout, re-armed by each request of the session
	// but never past exp (websession.go); deleted at sign-out.
	keyWebSession = Prefix + "websession:"

	// keyNode + "{" + node + "}" + suffix: a node's (one Asterisk and its Stasis app; the app
	// name names it) instance lease, under one hash tag (instance.go, app/lease.go).
	//   nodeLeaseSuffix → hash (fields instance, epoch, since in Unix ms): the active instance,
	//     the one that holds the ARI events socket and runs the node's sessions. TTL the lease
	//     TTL (app.Config.LeaseTTL, 3 s), renewed by its holder every third of it; deleted when
	//     it stops gracefully.
	//   nodeEpochSuffix → integer: incremented at every acquisition of the lease; the epoch a
	//     session record carries with its instance is its owner's fencing token. No TTL.
	//   nodeStandbySuffix → string: the name of an instance waiting as the node's standby. TTL
	//     the lease TTL, renewed while it waits.
	keyNode           = Prefix + "node:"
	nodeLeaseSuffix   = ":lease"
	nodeEpochSuffix   = ":epoch"
	nodeStandbySuffix = ":standby"

	// keyCommands + node → list of JSON commands for the node's active instance (the API's
	// session-changing requests made on another instance: app/lease_forward.go), pushed on
	// the left, taken on the right. TTL a minute, re-applied on each push.
	keyCommands = Prefix + "commands:"

	// keyCommandReply + command id → list holding the command's JSON answer. TTL a minute.
	keyCommandReply = Prefix + "command-reply:"

	keyHelp        = Prefix + "help:"
	helpReqSuffix  = ":req:"
	helpCallSuffix = ":call:"
	helpAllSuffix  = ":all"
	helpLiveSuffix = ":live"
)

// Tenants cannot contain ':' (checkTenant), so keys that join a tenant and a
// caller's string with ':' cannot collide across tenants.

func sessionKey(id string) string    { return keySession + id }
func channelKey(ch string) string    { return keyChannel + ch }
func tenantKey(tenant string) string { return keyTenant + tenant }
func supervisingKey(tenant, supervisor, call string) string {
	return keySupervising + tenant + "/" + supervisor + "/" + call
}
func claimKey(key string) string                 { return keyClaim + key }
func auditKey(tenant string) string              { return keyAudit + tenant }
func reportRollupKey(tenant, name string) string { return keyReportRollup + tenant + ":" + name }
func auditCheckpointKey(tenant string) string {
	return keyAuditCheckpoint + "{" + auditKey(tenant) + "}"
}
func auditOnceKey(tenant, once string) string {
	return keyAuditOnce + "{" + auditKey(tenant) + "}:" + once
}
func onceKey(key string) string { return keyOnce + key }
func auditBurstKey(tenant, burst string) string {
	return keyAuditBurst + tenant + ":" + burst
}
func idemKey(tenant, key string) string       { return keyIdem + tenant + ":" + key }
func apiKeyKey(sha string) string             { return keyAPIKey + sha }
func apiKeyNamesKey(tenant string) string     { return keyAPIKeyNames + tenant }
func nonceKey(tenant, nonce string) string    { return keyNonce + tenant + ":" + nonce }
func deliveriesKey(tenant string) string      { return keyDeliveries + "{" + tenant + "}" }
func deliveriesOrderKey(tenant string) string { return deliveriesKey(tenant) + deliveriesOrderSuffix }
func eventsKey(tenant string) string          { return keyEvents + tenant }
func helpTenantKey(tenant string) string      { return keyHelp + "{" + tenant + "}" }
func helpKey(tenant, id string) string        { return helpTenantKey(tenant) + helpReqSuffix + id }
func helpCallKey(tenant, call string) string  { return helpTenantKey(tenant) + helpCallSuffix + call }
func helpAllKey(tenant string) string         { return helpTenantKey(tenant) + helpAllSuffix }
func helpLiveKey(tenant string) string        { return helpTenantKey(tenant) + helpLiveSuffix }
func leaseKey(node string) string             { return keyNode + "{" + node + "}" + nodeLeaseSuffix }
func leaseEpochKey(node string) string        { return keyNode + "{" + node + "}" + nodeEpochSuffix }
func standbyKey(node string) string           { return keyNode + "{" + node + "}" + nodeStandbySuffix }
func commandsKey(node string) string          { return keyCommands + node }
func replyKey(id string) string               { return keyCommandReply + id }
