package store

// AuditKeyForTest is the tenant's audit stream key, for benchmarks that fill it directly.
func AuditKeyForTest(tenant string) string { return auditKey(tenant) }
