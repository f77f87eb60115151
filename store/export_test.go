package store

// AuditHashForTest is auditHash over a stream entry's values, for tests that forge entries.
func AuditHashForTest(values map[string]any) string {
	fields := make(map[string]string, len(values))
	for k, v := range values {
		fields[k], _ = v.(string)
	}
	return auditHash(fields)
}
