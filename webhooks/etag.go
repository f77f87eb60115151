package webhooks

import (
	"errors"
	"strings"
)

// maxETags bounds the entity tags one If-Match or If-None-Match may list: a client asks about
// one version of a resource, maybe a few; the header size limit bounds the rest.
const maxETags = 32

// parseETagList parses an If-Match or If-None-Match value (RFC 9110 section 13.1): "*", or a
// comma-separated list of entity tags, each "opaque" or W/"opaque" with opaque made of visible
// ASCII but '"' (and obs-text bytes), kept as sent (quotes and W/ included). Empty list
// elements are skipped, as the list syntax allows; a list with no tag, "*" among tags, or
// anything else is an error.
func parseETagList(v string) (tags []string, star bool, err error) {
	if strings.TrimSpace(v) == "*" {
		return nil, true, nil
	}
	i := 0
	for {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
		if i == len(v) {
			break
		}
		start := i
		if strings.HasPrefix(v[i:], "W/") {
			i += 2
		}
		if i >= len(v) || v[i] != '"' {
			return nil, false, errors.New(`want "*" or entity tags such as "0a1b..." (quoted)`)
		}
		i++
		for i < len(v) && v[i] != '"' {
			if c := v[i]; c < 0x21 || c == 0x7f {
				return nil, false, errors.New("entity tag with a character that is not visible ASCII")
			}
			i++
		}
		if i == len(v) {
			return nil, false, errors.New("entity tag without its closing quote")
		}
		i++
		if len(tags) == maxETags {
			return nil, false, errors.New("too many entity tags")
		}
		tags = append(tags, v[start:i])
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i < len(v) && v[i] != ',' {
			return nil, false, errors.New("entity tags must be separated by commas")
		}
	}
	if len(tags) == 0 {
		return nil, false, errors.New("no entity tag")
	}
	return tags, false, nil
}

// containsWeak reports whether tags has tag under weak comparison (W/ ignored on both sides),
// the comparison If-None-Match uses.
func containsWeak(tags []string, tag string) bool {
	tag = strings.TrimPrefix(tag, "W/")
	for _, t := range tags {
		if strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}
