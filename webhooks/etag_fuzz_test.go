package webhooks

import (
	"slices"
	"strings"
	"testing"
)

func TestParseETagList(t *testing.T) {
	for _, c := range []struct {
		in   string
		tags []string
		star bool
		ok   bool
	}{
		{`*`, nil, true, true},
		{` * `, nil, true, true},
		{`"abc"`, []string{`"abc"`}, false, true},
		{`"a", W/"b" ,,"c"`, []string{`"a"`, `W/"b"`, `"c"`}, false, true},
		{`""`, []string{`""`}, false, true},
		{``, nil, false, false},
		{`,`, nil, false, false},
		{`abc`, nil, false, false},
		{`"a" "b"`, nil, false, false},
		{`"a`, nil, false, false},
		{`*, "a"`, nil, false, false},
		{`W/abc`, nil, false, false},
		{"\"a\tb\"", nil, false, false},
	} {
		tags, star, err := parseETagList(c.in)
		if (err == nil) != c.ok || star != c.star || !slices.Equal(tags, c.tags) {
			t.Errorf("parseETagList(%q) = %q, %v, %v", c.in, tags, star, err)
		}
	}
}

// FuzzParseETagList: If-Match and If-None-Match are outside input. Whatever comes, the parser
// neither panics nor returns a tag that is not one, and what it returns parses back the same.
func FuzzParseETagList(f *testing.F) {
	for _, s := range []string{`*`, `"abc"`, `W/"x", "y"`, `,,"a",`, `"a" "b"`, `W/`, `"`, "\"\x80\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tags, star, err := parseETagList(in)
		if err != nil {
			if tags != nil || star {
				t.Fatalf("error %v with %q, %v", err, tags, star)
			}
			return
		}
		if star {
			if strings.TrimSpace(in) != "*" || tags != nil {
				t.Fatalf("star for %q with %q", in, tags)
			}
			return
		}
		if len(tags) == 0 || len(tags) > maxETags {
			t.Fatalf("%d tags for %q", len(tags), in)
		}
		for _, tag := range tags {
			opaque := strings.TrimPrefix(tag, "W/")
			if len(opaque) < 2 || opaque[0] != '"' || opaque[len(opaque)-1] != '"' || strings.Contains(opaque[1:len(opaque)-1], `"`) {
				t.Fatalf("tag %q of %q", tag, in)
			}
		}
		again, star2, err := parseETagList(strings.Join(tags, ", "))
		if err != nil || star2 || !slices.Equal(again, tags) {
			t.Fatalf("%q parsed back as %q, %v, %v", tags, again, star2, err)
		}
	})
}
