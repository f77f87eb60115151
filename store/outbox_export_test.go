package store

// OutboxKeyForTest is the key of the tenant's outbox part named by suffix (":items",
// ":queue", ":claims", ":endpoints", or ":due:" + an endpoint id), for tests that look inside.
func OutboxKeyForTest(tenant, suffix string) string { return outboxTenantKey(tenant) + suffix }
