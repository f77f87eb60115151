package config

import (
	"strings"
	"testing"
)

// TestCheckRedisURL: redis.url takes one server, Sentinel and Cluster URLs, and says what is
// wrong with others without showing their password.
func TestCheckRedisURL(t *testing.T) {
	for _, ok := range []string{
		"redis://127.0.0.1:6379/0",
		"rediss://:pw@redis.example:6380/2",
		"redis-sentinel://:pw@s1:26379,s2:26379,s3/0?master=mymaster",
		"rediss-sentinel://s1?master=m&sentinel_password=x",
		"redis-cluster://:pw@n1:7000,n2:7001,[::1]:7002",
		"rediss-cluster://n1:7000/0?read_timeout=1s",
	} {
		if err := CheckRedisURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"http://:secret@h:6379":                    "scheme must be",
		"redis-sentinel://:secret@s1,s2/0":         "needs ?master=",
		"redis-cluster://:secret@n1,,n2":           "empty host",
		"redis-cluster://:secret@n1:7000/3":        "database 0 only",
		"redis://:secret@h1:6379,h2:6379/0":        "several hosts",
		"redis-sentinel://:secret@s1:x/0?master=m": "",
		"redis-cluster://:secret@/":                "want an absolute URL with a host",
	} {
		err := CheckRedisURL(bad)
		if err == nil {
			t.Errorf("%s: accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (want %q, no password)", bad, err, want)
		}
	}
}
